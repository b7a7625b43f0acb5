"""Fine-tune MiniLM for sentiment: LoRA adapters plus a linear 3-way head, two tasks at once.

The frozen-embedding head (`tasks.train_head`) tops out near 79 % on SST-2 dev because the
encoder was never taught polarity. Here low-rank adapters in every attention and feed-forward
projection adapt the encoder itself while the shipped artefact stays a few MB. Supervision is
the same as for the frozen head: SST-2 rows (negative/positive) take cross-entropy over the
renormalised (negative, positive) logits, so neutral is marginalised out; rows of the training
part of the fixed Financial PhraseBank split take ordinary 3-way cross-entropy. A single
temperature is then fitted on a calibration slice neither task trained on.

    python -m tasks.train_sentiment --sst2 ../shared/eval/sst2/train.tsv \
        --fpb ../shared/eval/fpb_lowagree.tsv --out tasks/assets/sentiment-lora
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tasks.batching import length_batches
from tasks.models import DEFAULT_ENCODER, file_digest, resolve_encoder
from tasks.record import SENTIMENT_LABELS
from tasks.sentiment import LORA_NAME, load_base_encoder, mean_pool
from tasks.train_head import (
    FPB_SPLIT_RULE,
    LICENCES,
    fpb_split,
    polarity_accuracy,
    read_tsv,
    text_bucket,
    three_class_metrics,
    training_parser,
)

# Every linear layer of the six transformer blocks; the regex leaves out anything else.
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)
SST2_CALIB_RULE = "SST-2 train rows with text_bucket(text) < 2 (never trained on)"
SST2_SUBSET_RULE = (
    "SST-2 train rows with text_bucket(text) >= 2, ordered by sha256(text.strip()) hex digest, "
    "first `sst2_rows` taken (independent of file order and seed)"
)
FPB_CALIB_RULE = "FPB train-part rows with text_bucket(sentence) % 20 == 0 (never trained on)"
POOLING = "mean"
ECE_BINS = 15

DEFAULTS: dict[str, Any] = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lr": 1e-3,
    "head_lr": 2e-3,
    "weight_decay": 0.01,
    "warmup_ratio": 0.06,
    "batch_size": 32,
    # (inverse class frequency) ** power on the FPB loss; 0 = unweighted.
    "fpb_class_weight_power": 0.0,
}


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sha(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def select_data(
    sst_rows: list[tuple[str, str]], fpb_rows: list[tuple[str, str]], sst2_rows: int
) -> dict[str, list[tuple[str, int]]]:
    """Training, calibration and evaluation rows by fixed hash rules (see the *_RULE strings)."""
    label_index = {label: i for i, label in enumerate(SENTIMENT_LABELS)}
    fpb_train, fpb_heldout = fpb_split(fpb_rows)
    sst = [(t, int(y)) for t, y in sst_rows]
    sst_pool = sorted((r for r in sst if text_bucket(r[0]) >= 2), key=lambda r: _sha(r[0]))
    return {
        "sst2_train": sst_pool[:sst2_rows],
        "sst2_calib": [r for r in sst if text_bucket(r[0]) < 2],
        "fpb_train": [(t, label_index[y]) for t, y in fpb_train if text_bucket(t) % 20],
        "fpb_calib": [(t, label_index[y]) for t, y in fpb_train if text_bucket(t) % 20 == 0],
        "fpb_heldout": [(t, label_index[y]) for t, y in fpb_heldout],
    }


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator, chunk: int = 50
) -> list[list[int]]:
    """Shuffled batches of similar length: less padding, tasks still mixed at random.

    Rows are shuffled, cut into chunks of `chunk` batches, sorted by length inside each
    chunk and split into batches; the batches are shuffled again.
    """
    order = rng.permutation(len(lengths))
    batches: list[list[int]] = []
    span = batch_size * chunk
    for start in range(0, len(order), span):
        part = sorted(order[start : start + span].tolist(), key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - confidence| over equal-width confidence bins, row-weighted."""
    if not len(y):
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return round(float(ece), 4)


def polar_probs(probs: np.ndarray) -> np.ndarray:
    """(p_neg, p_pos) renormalised: how a 3-way model is scored on 2-way SST-2."""
    neg, pos = SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")
    two = probs[:, [neg, pos]]
    return two / two.sum(axis=1, keepdims=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(
    fpb_logits: np.ndarray, fpb_y: np.ndarray, sst_logits: np.ndarray, sst_y: np.ndarray
) -> float:
    """One temperature minimising the mean of the two tasks' NLLs (L-BFGS on log T).

    Each task counts equally whatever its slice size; SST-2 rows use the renormalised
    (negative, positive) probabilities, as in training.
    """
    import torch

    polar = [SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")]
    zf, zs = torch.from_numpy(fpb_logits).double(), torch.from_numpy(sst_logits).double()
    yf, ys = torch.from_numpy(fpb_y).long(), torch.from_numpy(sst_y).long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")
    ce = torch.nn.functional.cross_entropy

    def closure():
        opt.zero_grad()
        t = log_t.exp()
        losses = []
        if len(yf):
            losses.append(ce(zf / t, yf))
        if len(ys):
            losses.append(ce(zs[:, polar] / t, ys))
        loss = sum(losses) / max(len(losses), 1)
        loss.backward()
        return loss

    opt.step(closure)
    # Bounded: a tiny or degenerate calibration slice must not flatten every prediction.
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


class _Batcher:
    """Tokenises once, then pads index batches into tensors."""

    def __init__(self, tokenizer, texts: list[str], max_length: int):
        self.ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        self.pad = int(tokenizer.pad_token_id)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def tensors(self, idx: list[int]):
        import torch

        width = max(len(self.ids[i]) for i in idx)
        ids = torch.full((len(idx), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(self.ids[i])] = torch.tensor(self.ids[i])
            mask[row, : len(self.ids[i])] = 1
        return ids, mask


def _logits(encoder, head, tokenizer, texts: list[str], max_length: int,
            batch_size: int = 128) -> np.ndarray:
    """Head logits of `texts` in eval mode, batched by length, in input order."""
    import torch

    out = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
    if not texts:
        return out
    batcher = _Batcher(tokenizer, texts, max_length)
    encoder.eval()
    head.eval()
    with torch.inference_mode():
        for idx in length_batches(batcher.lengths(), batch_size):
            ids, mask = batcher.tensors(idx)
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            out[idx] = head(mean_pool(hidden, mask)).numpy()
    return out


def _evaluate(logits: dict[str, np.ndarray], ys: dict[str, np.ndarray],
              temperature: float) -> dict[str, Any]:
    """Held-out figures (FPB 3-class, SST-2 dev polarity) and ECE at one temperature."""
    out: dict[str, Any] = {}
    fpb = _softmax(logits["fpb_heldout"] / temperature)
    out["fpb_heldout"] = three_class_metrics(fpb, ys["fpb_heldout"])
    out["fpb_heldout"]["ece"] = expected_calibration_error(fpb, ys["fpb_heldout"])
    if "sst2_dev" in logits:
        dev = _softmax(logits["sst2_dev"] / temperature)
        out["sst2_dev"] = {
            "rows": int(len(ys["sst2_dev"])),
            "polarity_accuracy": polarity_accuracy(dev, ys["sst2_dev"]),
            "ece_polar": expected_calibration_error(polar_probs(dev), ys["sst2_dev"]),
        }
    return out


def train_sentiment_model(
    sst2_train: Path,
    fpb: Path,
    out_dir: Path,
    seed: int = 13,
    *,
    sst2_rows: int = 20000,
    fpb_repeat: int = 3,
    epochs: int = 1,
    max_length: int = 64,
    sst2_dev: Path | None = None,
    max_steps: int | None = None,
    fp16_adapter: bool = True,
    progress: bool = True,
    **hyperparameters: Any,
) -> dict[str, Any]:
    """Train, calibrate, score and save the adapter, head, config and model card.

    Returns the config written to `out_dir/config.json` (hyperparameters, data rules, metrics,
    timing). `max_steps` cuts training short (tests). With `fp16_adapter` the adapter is
    stored in float16 and every reported figure is measured with the rounded weights.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    unknown = set(hyperparameters) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
    hp = {**DEFAULTS, **hyperparameters}
    started = time.perf_counter()
    _seed_everything(seed)
    rng = np.random.default_rng(seed)

    data = select_data(read_tsv(sst2_train), read_tsv(fpb), sst2_rows)
    train_rows = [(t, y, 0) for t, y in data["sst2_train"]]
    train_rows += [(t, y, 1) for t, y in data["fpb_train"]] * fpb_repeat
    if not train_rows:
        raise ValueError("no training rows")

    base_ref = resolve_encoder(DEFAULT_ENCODER)
    tokenizer = AutoTokenizer.from_pretrained(str(base_ref.path))
    base = load_base_encoder(base_ref.path)
    lora_config = LoraConfig(
        r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
        target_modules=LORA_TARGETS, bias="none",
    )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        encoder = get_peft_model(base, lora_config)
    hidden_size = int(base.config.hidden_size)
    head = torch.nn.Linear(hidden_size, len(SENTIMENT_LABELS))
    lora_params = [p for p in encoder.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in lora_params) + sum(p.numel() for p in head.parameters())

    batcher = _Batcher(tokenizer, [t for t, _, _ in train_rows], max_length)
    labels = torch.tensor([y for _, y, _ in train_rows], dtype=torch.long)
    is_fpb = torch.tensor([task == 1 for _, _, task in train_rows], dtype=torch.bool)
    counts = np.bincount([y for _, y in data["fpb_train"]], minlength=len(SENTIMENT_LABELS))
    class_w = (counts.sum() / (len(counts) * np.maximum(counts, 1))) ** hp[
        "fpb_class_weight_power"
    ]
    class_w = torch.tensor(class_w * counts.sum() / max((class_w * counts).sum(), 1e-12),
                           dtype=torch.float32)
    polar = [SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")]

    epoch_batches = [length_grouped_batches(batcher.lengths(), hp["batch_size"], rng)
                     for _ in range(epochs)]
    steps = sum(len(b) for b in epoch_batches)
    if max_steps is not None:
        steps = min(steps, max_steps)
    warmup = max(1, int(round(hp["warmup_ratio"] * steps)))
    optimizer = torch.optim.AdamW(
        [{"params": lora_params, "lr": hp["lr"]},
         {"params": list(head.parameters()), "lr": hp["head_lr"]}],
        weight_decay=hp["weight_decay"],
    )

    def lr_factor(s: int) -> float:
        return (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    ce = torch.nn.functional.cross_entropy

    encoder.train()
    head.train()
    step, running = 0, None
    train_started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="LoRA sentiment", unit="batch")
    for batches in epoch_batches:
        for idx in batches:
            if step >= steps:
                break
            ids, mask = batcher.tensors(idx)
            logits = head(mean_pool(encoder(input_ids=ids, attention_mask=mask).last_hidden_state,
                                    mask))
            y, f = labels[idx], is_fpb[idx]
            loss = logits.new_zeros(())
            if (~f).any():  # SST-2: neutral marginalised out
                loss = loss + ce(logits[~f][:, polar], y[~f], reduction="sum")
            if f.any():
                loss = loss + ce(logits[f], y[f], weight=class_w, reduction="none").sum()
            loss = loss / len(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            value = loss.item()
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
    bar.close()
    train_s = time.perf_counter() - train_started

    eval_sets = {k: data[k] for k in ("fpb_calib", "sst2_calib", "fpb_heldout")}
    if sst2_dev is not None:
        eval_sets["sst2_dev"] = [(t, int(y)) for t, y in read_tsv(sst2_dev)]
    ys = {k: np.array([y for _, y in rows], dtype=np.int64) for k, rows in eval_sets.items()}

    def all_logits() -> dict[str, np.ndarray]:
        return {k: _logits(encoder, head, tokenizer, [t for t, _ in rows], max_length)
                for k, rows in eval_sets.items()}

    logits = all_logits()
    fp32_metrics = _evaluate(logits, ys, 1.0)
    if fp16_adapter:  # measure what ships: round the adapter weights as they will be stored
        with torch.no_grad():
            for p in lora_params:
                p.copy_(p.half().float())
        logits = all_logits()
    temperature = fit_temperature(logits["fpb_calib"], ys["fpb_calib"],
                                  logits["sst2_calib"], ys["sst2_calib"])
    metrics = {
        "before_calibration": _evaluate(logits, ys, 1.0),
        "after_calibration": _evaluate(logits, ys, temperature),
        "fp32_adapter_before_calibration": fp32_metrics,
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.peft_config["default"].base_model_name_or_path = base_ref.name  # not a local path
    encoder.save_pretrained(str(out_dir), save_embedding_layers=False)
    adapter_file = out_dir / "adapter_model.safetensors"
    if fp16_adapter:
        state = load_file(str(adapter_file))
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(adapter_file),
                  metadata={"format": "pt"})
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()},
              str(out_dir / "head.safetensors"),
              metadata={"format": "pt", "labels": ",".join(SENTIMENT_LABELS)})

    config = {
        "name": LORA_NAME,
        "task": "sentence sentiment: negative / neutral / positive",
        "labels": list(SENTIMENT_LABELS),
        "base_model": {"name": base_ref.name, "revision": base_ref.revision},
        "hidden_size": hidden_size,
        "max_length": max_length,
        "pooling": POOLING,
        "sentence_pooling": "mean of last hidden states over non-padding tokens",
        "temperature": round(temperature, 6),
        "lora": {"r": hp["lora_r"], "alpha": hp["lora_alpha"], "dropout": hp["lora_dropout"],
                 "target_modules": LORA_TARGETS, "merged_at_load": True,
                 "adapter_dtype": "float16" if fp16_adapter else "float32"},
        "trainable_parameters": int(n_trainable),
        "seed": seed,
        "hyperparameters": {
            **hp, "sst2_rows": sst2_rows, "fpb_repeat": fpb_repeat, "epochs": epochs,
            "max_length": max_length, "steps": steps, "warmup_steps": warmup,
            "optimizer": "AdamW; linear warm-up then linear decay to 0",
            "batching": "shuffled, length-grouped within chunks of 50 batches",
            "loss": "per-row mean of: SST-2 CE over (negative, positive) logits; FPB 3-way CE "
                    "(class weights = (inverse frequency) ** fpb_class_weight_power)",
        },
        "data": {
            "sst2_train": {"path": str(sst2_train), "rows_trained": len(data["sst2_train"]),
                           "rule": SST2_SUBSET_RULE, "licence": LICENCES["sst2"]},
            "fpb": {"path": str(fpb), "train_rows_trained": len(data["fpb_train"]),
                    "heldout_rows": len(data["fpb_heldout"]), "split_rule": FPB_SPLIT_RULE,
                    "licence": LICENCES["fpb"]},
            "calibration": {"fpb_rows": len(data["fpb_calib"]), "fpb_rule": FPB_CALIB_RULE,
                            "sst2_rows": len(data["sst2_calib"]), "sst2_rule": SST2_CALIB_RULE,
                            "method": "one temperature, mean of the two tasks' NLL, L-BFGS "
                                      "on log T"},
            "sst2_dev": str(sst2_dev) if sst2_dev is not None else None,
        },
        "metrics": {**metrics, "ece_bins": ECE_BINS,
                    "ece_note": "top-label ECE; SST-2 on renormalised (negative, positive)"},
        "timing_s": {"train": round(train_s, 1),
                     "total": round(time.perf_counter() - started, 1)},
        "files": {"adapter_bytes": adapter_file.stat().st_size,
                  "adapter_sha256_12": file_digest(adapter_file)},
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(config), encoding="utf-8")
    return config


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def model_card(config: dict[str, Any]) -> str:
    """The README of the saved folder, with the figures this run measured."""
    m, hp, data = config["metrics"], config["hyperparameters"], config["data"]
    before, after = m["before_calibration"], m["after_calibration"]
    fpb = after["fpb_heldout"]
    sst = after.get("sst2_dev", {})
    recall = " / ".join(_pct(fpb["recall"][label]) for label in SENTIMENT_LABELS)
    sst_ece = (f"{before['sst2_dev']['ece_polar']:.3f} → {sst['ece_polar']:.3f}"
               if sst else "n/a")
    rows = [
        (f"SST-2 dev, {sst.get('rows', 0)} sentences, sign of p(pos) − p(neg)",
         _pct(sst.get("polarity_accuracy"))),
        (f"FPB held-out, {fpb['rows']:,} sentences, 3-class accuracy",
         f"{_pct(fpb['accuracy'])} (always-neutral: {_pct(fpb['always_neutral_accuracy'])})"),
        ("FPB held-out recall negative / neutral / positive", recall),
        ("ECE (15 bins), FPB held-out, before → after temperature",
         f"{before['fpb_heldout']['ece']:.3f} → {fpb['ece']:.3f}"),
        ("ECE (15 bins), SST-2 dev on (neg, pos), before → after", sst_ece),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    lora, cal = config["lora"], data["calibration"]
    epochs = f"{hp['epochs']} epoch" + ("s" if hp["epochs"] != 1 else "")
    return f"""# {config['name']}: MiniLM + LoRA sentiment model

Sentence sentiment (negative / neutral / positive) from `{config['base_model']['name']}` (the
built-in encoder) fine-tuned with LoRA adapters. Load it with
`tasks.sentiment.load_sentiment("{config['name']}")`; it needs no network.

- Base: `{config['base_model']['revision']}`.
- Adapters: r={lora['r']}, alpha={lora['alpha']}, dropout {lora['dropout']}, on query, key,
  value, attention output and both feed-forward layers of all six blocks; stored in
  {lora['adapter_dtype']} ({config['files']['adapter_bytes'] / 1e6:.1f} MB) and merged into
  the base weights at load, so inference is one plain MiniLM pass per sentence.
- Head: linear 384 → 3 on the mean of the token vectors (at most {config['max_length']}
  tokens); {config['trainable_parameters']:,} trainable parameters in all.
- Probabilities: softmax(logits / T), T = {config['temperature']:.3f}. A document is the mean
  of its sentences' probabilities.

## Data
- **SST-2** train: {data['sst2_train']['rows_trained']:,} rows. Rule:
  {data['sst2_train']['rule']}. Loss: cross-entropy over the renormalised
  (negative, positive) logits, since SST-2 has no neutral class.
- **Financial PhraseBank** (50–99 %-agreement sentences), the training part of the fixed split
  shared with `minilm-head` ({data['fpb']['split_rule']}) less the calibration slice:
  {data['fpb']['train_rows_trained']:,} rows, repeated {hp['fpb_repeat']}×, 3-way
  cross-entropy. The {data['fpb']['heldout_rows']:,} held-out rows were never trained on.
- **Calibration** (never trained on): {cal['fpb_rows']} FPB rows ({cal['fpb_rule']}) and
  {cal['sst2_rows']:,} SST-2 rows ({cal['sst2_rule']}); {cal['method']}.

## Recipe
AdamW, lr {hp['lr']} (head {hp['head_lr']}), weight decay {hp['weight_decay']},
{hp['warmup_ratio']:.0%} linear warm-up then linear decay, batch {hp['batch_size']}
({hp['batching']}), {epochs} = {hp['steps']} steps, seed {config['seed']}.
Training took {config['timing_s']['train'] / 60:.1f} min on a 2-core CPU. Reproduce:

    python -m tasks.train_sentiment --sst2 ../shared/eval/sst2/train.tsv \\
        --fpb ../shared/eval/fpb_lowagree.tsv --out tasks/assets/sentiment-lora \\
        --sst2-rows {hp['sst2_rows']} --fpb-repeat {hp['fpb_repeat']} --seed {config['seed']}

## Figures (data never trained on; `python -m bench.sentiment_eval`)
| data | figure |
|---|---|
{table}

Frozen-embedding head `minilm-head` on the same data: 78.7 % SST-2 dev, 64.8 % FPB held-out.

## Licences
SST / SST-2: no licence stated. Financial PhraseBank: **CC BY-NC-SA 3.0** (non-commercial,
share-alike). The adapter and head are derived from FPB, so treat them as non-commercial,
share-alike; retrain without FPB for commercial use. Base model all-MiniLM-L6-v2: Apache-2.0.
"""


def main(argv: list[str] | None = None) -> None:
    parser = training_parser(__doc__.splitlines()[0])
    parser.add_argument("--sst2-rows", type=int, default=20000)
    parser.add_argument("--fpb-repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--fpb-class-weight-power", type=float,
                        default=DEFAULTS["fpb_class_weight_power"])
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    dev = args.sst2_dev or args.sst2.with_name("dev.tsv")
    config = train_sentiment_model(
        args.sst2, args.fpb, args.out, args.seed,
        sst2_rows=args.sst2_rows, fpb_repeat=args.fpb_repeat, epochs=args.epochs,
        max_length=args.max_length, sst2_dev=dev if dev.is_file() else None,
        progress=not args.no_progress, fpb_class_weight_power=args.fpb_class_weight_power,
    )
    print(json.dumps(config["metrics"], indent=2))


if __name__ == "__main__":
    main()
