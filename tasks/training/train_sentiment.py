"""Fine-tune MiniLM for sentiment: LoRA adapters plus a linear 3-way head, two tasks at once.

The frozen-embedding head (`tasks.training.train_head`) tops out near 79 % on SST-2 dev because the
encoder was never taught polarity. Here low-rank adapters in every attention and feed-forward
projection adapt the encoder itself while the shipped artefact stays a few MB. Supervision is
the same as for the frozen head: SST-2 rows (negative/positive) take cross-entropy over the
renormalised (negative, positive) logits, so neutral is marginalised out; rows of the training
part of the fixed Financial PhraseBank split take ordinary 3-way cross-entropy. A single
temperature is then fitted on a calibration slice neither task trained on.

    python -m tasks.training.train_sentiment --sst2 ../shared/eval/sst2/train.tsv \
        --fpb ../shared/eval/fpb_lowagree.tsv --out tasks/models/assets/sentiment-lora
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

from tasks.models.batching import length_batches
from tasks.models.encoder_pass import load_base_encoder, mean_pool
from tasks.models.registry import DEFAULT_ENCODER, file_digest, resolve_encoder
from tasks.models.sentiment import LORA_NAME
from tasks.models.sentiment_base import label_indices
from tasks.record import SENTIMENT_LABELS
from tasks.training.sentiment_data import (
    CALIB_RULE,
    SENTFIN_SPLIT_RULE,
    calib_split,
    read_labelled,
    sentfin_split,
)
from tasks.training.sentiment_data import LICENCES as NEWS_LICENCES
from tasks.training.train_head import (
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
POOLING = "news"
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


def warmup_linear(optimizer, steps: int, warmup: int):
    """The learning rate rising linearly over `warmup` steps, then falling linearly to 0 at
    `steps` (the schedule every trainer here uses)."""
    import torch

    def factor(s: int) -> float:
        return (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def hyperparameter_flags(parser, defaults: dict[str, Any]) -> None:
    """One `--some-name` option per hyperparameter, typed and defaulted by `defaults`."""
    for key, value in defaults.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)


def _sha(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def select_data(
    sst_rows: list[tuple[str, str]], fpb_rows: list[tuple[str, str]], sst2_rows: int,
    news: dict[str, list[tuple[str, str]]] | None = None,
) -> dict[str, list[tuple[str, int]]]:
    """Training, calibration and evaluation rows by fixed hash rules (see the *_RULE strings).

    `news` may hold "sentfin" (all of SEntFiN: split here) and "tfns" (its train file; its
    validation file is only ever evaluated on).
    """
    label_index = {label: i for i, label in enumerate(SENTIMENT_LABELS)}
    fpb_train, fpb_heldout = fpb_split(fpb_rows)
    sst = [(t, int(y)) for t, y in sst_rows]
    sst_pool = sorted((r for r in sst if text_bucket(r[0]) >= 2), key=lambda r: _sha(r[0]))

    def idx(rows):
        return [(t, label_index[y]) for t, y in rows]

    data = {
        "sst2_train": sst_pool[:sst2_rows],
        "sst2_calib": [r for r in sst if text_bucket(r[0]) < 2],
        "fpb_train": [(t, label_index[y]) for t, y in fpb_train if text_bucket(t) % 20],
        "fpb_calib": [(t, label_index[y]) for t, y in fpb_train if text_bucket(t) % 20 == 0],
        "fpb_heldout": [(t, label_index[y]) for t, y in fpb_heldout],
    }
    news = news or {}
    if "sentfin" in news:
        train, heldout = sentfin_split(news["sentfin"])
        fit, calib = calib_split(train)
        data |= {"sentfin_train": idx(fit), "sentfin_calib": idx(calib),
                 "sentfin_heldout": idx(heldout)}
    if "tfns" in news:
        fit, calib = calib_split([r for r in news["tfns"] if r[1] in SENTIMENT_LABELS])
        data |= {"tfns_train": idx(fit), "tfns_calib": idx(calib)}
    return data


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
    three_way: list[tuple[np.ndarray, np.ndarray]], sst_logits: np.ndarray, sst_y: np.ndarray
) -> float:
    """One temperature minimising the mean of the sets' NLLs (L-BFGS on log T).

    Each set counts equally whatever its slice size; SST-2 rows use the renormalised
    (negative, positive) probabilities, as in training.
    """
    import torch

    polar = [SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")]
    sets = [(torch.from_numpy(z).double(), torch.from_numpy(y).long(), None)
            for z, y in three_way if len(y)]
    if len(sst_y):
        sets.append((torch.from_numpy(sst_logits).double(), torch.from_numpy(sst_y).long(),
                      polar))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")
    ce = torch.nn.functional.cross_entropy

    def closure():
        opt.zero_grad()
        t = log_t.exp()
        losses = [ce((z if cols is None else z[:, cols]) / t, y) for z, y, cols in sets]
        loss = sum(losses) / max(len(losses), 1)
        loss.backward()
        return loss

    opt.step(closure)
    # Bounded: a tiny or degenerate calibration slice must not flatten every prediction.
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def fit_neutral_band(three_way: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The |score| under which a row is neutral, maximising the sets' mean accuracy.

    Scored on calibrated probabilities of slices never trained on; a grid of 0.01 steps.
    """
    if not three_way:
        return 0.0
    grid = np.round(np.arange(0.0, 0.81, 0.01), 2)
    means = [np.mean([(label_indices(p, band) == y).mean() for p, y in three_way])
             for band in grid]
    return float(grid[int(np.argmax(means))])


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


HELDOUT_SETS = ("fpb_heldout", "sentfin_heldout", "tfns_valid")
CALIB_SETS = ("fpb_calib", "sentfin_calib", "tfns_calib")
NEWS_TRAIN_SETS = ("sentfin_train", "tfns_train")


def _news_data_notes(data: dict[str, list], sentfin: Path | None, tfns_train: Path | None,
                     tfns_valid: Path | None) -> dict[str, Any]:
    """The config's record of the news sets: paths, rows, split rules, licences."""
    notes: dict[str, Any] = {}
    if sentfin is not None:
        notes["sentfin"] = {"path": str(sentfin), "train_rows_trained": len(data["sentfin_train"]),
                            "calib_rows": len(data["sentfin_calib"]),
                            "heldout_rows": len(data["sentfin_heldout"]),
                            "split_rule": SENTFIN_SPLIT_RULE, "calib_rule": CALIB_RULE,
                            "licence": NEWS_LICENCES["sentfin"]}
    if tfns_train is not None:
        notes["tfns"] = {"path": str(tfns_train), "train_rows_trained": len(data["tfns_train"]),
                         "calib_rows": len(data["tfns_calib"]), "calib_rule": CALIB_RULE,
                         "validation": str(tfns_valid) if tfns_valid else None,
                         "licence": NEWS_LICENCES["tfns"]}
    return notes


def _evaluate(logits: dict[str, np.ndarray], ys: dict[str, np.ndarray],
              temperature: float, band: float | None = None) -> dict[str, Any]:
    """Held-out figures (3-class sets, SST-2 dev polarity) and ECE at one temperature.

    `band` None: labels by argmax; else by the neutral band on p(pos) - p(neg).
    """
    out: dict[str, Any] = {}
    for name in HELDOUT_SETS:
        if name in logits:
            probs = _softmax(logits[name] / temperature)
            out[name] = three_class_metrics(probs, ys[name], band)
            out[name]["ece"] = expected_calibration_error(probs, ys[name])
    if "sst2_dev" in logits:
        dev = _softmax(logits["sst2_dev"] / temperature)
        out["sst2_dev"] = {
            "rows": int(len(ys["sst2_dev"])),
            "polarity_accuracy": polarity_accuracy(dev, ys["sst2_dev"]),
            "ece_polar": expected_calibration_error(polar_probs(dev), ys["sst2_dev"]),
        }
    return out


def _training_rows(sst2_train: Path, fpb: Path, sst2_rows: int, fpb_repeat: int,
                   sentfin: Path | None, tfns_train: Path | None
                   ) -> tuple[dict[str, Any], list[tuple[str, int, int]]]:
    """The data splits, and the rows trained on as (text, label, task): task 1 is 3-way."""
    news = {}
    if sentfin is not None:
        news["sentfin"] = read_labelled(sentfin)
    if tfns_train is not None:
        news["tfns"] = read_labelled(tfns_train)
    data = select_data(read_tsv(sst2_train), read_tsv(fpb), sst2_rows, news)
    train_rows = [(t, y, 0) for t, y in data["sst2_train"]]
    train_rows += [(t, y, 1) for t, y in data["fpb_train"]] * fpb_repeat
    for name in NEWS_TRAIN_SETS:
        train_rows += [(t, y, 1) for t, y in data.get(name, [])]
    if not train_rows:
        raise ValueError("no training rows")
    return data, train_rows


def _lora_model(hp: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(base ref, tokenizer, LoRA-wrapped MiniLM, 3-way head), ready to train."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

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
    head = torch.nn.Linear(int(base.config.hidden_size), len(SENTIMENT_LABELS))
    return base_ref, tokenizer, encoder, head


def _fpb_class_weights(fpb_train: list[tuple[str, int]], power: float) -> Any:
    """(inverse frequency) ** power, scaled so the FPB rows' mean weight is 1."""
    import torch

    counts = np.bincount([y for _, y in fpb_train], minlength=len(SENTIMENT_LABELS))
    class_w = (counts.sum() / (len(counts) * np.maximum(counts, 1))) ** power
    return torch.tensor(class_w * counts.sum() / max((class_w * counts).sum(), 1e-12),
                        dtype=torch.float32)


def _train(encoder: Any, head: Any, batcher: _Batcher, train_rows: list[tuple[str, int, int]],
           class_w: Any, hp: dict[str, Any], epochs: int, rng: np.random.Generator,
           max_steps: int | None, progress: bool) -> tuple[int, int, float]:
    """The training loop: (steps, warm-up steps, seconds)."""
    import torch
    from tqdm.auto import tqdm

    labels = torch.tensor([y for _, y, _ in train_rows], dtype=torch.long)
    is_fpb = torch.tensor([task == 1 for _, _, task in train_rows], dtype=torch.bool)
    polar = [SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")]
    lora_params = [p for p in encoder.parameters() if p.requires_grad]
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
    scheduler = warmup_linear(optimizer, steps, warmup)
    ce = torch.nn.functional.cross_entropy
    encoder.train()
    head.train()
    step, running = 0, None
    started = time.perf_counter()
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
    return steps, warmup, time.perf_counter() - started


def _eval_sets(data: dict[str, Any], sst2_dev: Path | None, tfns_valid: Path | None
               ) -> dict[str, list[tuple[str, int]]]:
    eval_sets = {k: data[k] for k in (*CALIB_SETS, "sst2_calib", *HELDOUT_SETS) if k in data}
    if sst2_dev is not None:
        eval_sets["sst2_dev"] = [(t, int(y)) for t, y in read_tsv(sst2_dev)]
    if tfns_valid is not None:
        eval_sets["tfns_valid"] = [(t, SENTIMENT_LABELS.index(y))
                                   for t, y in read_labelled(tfns_valid)]
    return eval_sets


def _calibrate_and_score(encoder: Any, head: Any, tokenizer: Any, max_length: int,
                         eval_sets: dict[str, list[tuple[str, int]]], fp16_adapter: bool
                         ) -> tuple[float, float, dict[str, Any]]:
    """(temperature, neutral band, metrics), measured on the weights as they will ship."""
    import torch

    ys = {k: np.array([y for _, y in rows], dtype=np.int64) for k, rows in eval_sets.items()}

    def all_logits() -> dict[str, np.ndarray]:
        return {k: _logits(encoder, head, tokenizer, [t for t, _ in rows], max_length)
                for k, rows in eval_sets.items()}

    logits = all_logits()
    fp32_metrics = _evaluate(logits, ys, 1.0)
    if fp16_adapter:  # measure what ships: round the adapter weights as they will be stored
        with torch.no_grad():
            for p in (p for p in encoder.parameters() if p.requires_grad):
                p.copy_(p.half().float())
        logits = all_logits()
    calib = [(logits[k], ys[k]) for k in CALIB_SETS if k in logits]
    temperature = fit_temperature(calib, logits["sst2_calib"], ys["sst2_calib"])
    band = fit_neutral_band([(_softmax(z / temperature), y) for z, y in calib])
    return temperature, band, {
        "before_calibration": _evaluate(logits, ys, 1.0),
        "after_calibration": _evaluate(logits, ys, temperature),
        "with_neutral_band": _evaluate(logits, ys, temperature, band),
        "fp32_adapter_before_calibration": fp32_metrics,
    }


def _save(encoder: Any, head: Any, base_name: str, out_dir: Path, fp16_adapter: bool) -> Path:
    """Write the adapter (float16 if asked) and the head; the adapter file's path."""
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.peft_config["default"].base_model_name_or_path = base_name  # not a local path
    encoder.save_pretrained(str(out_dir), save_embedding_layers=False)
    adapter_file = out_dir / "adapter_model.safetensors"
    if fp16_adapter:
        state = load_file(str(adapter_file))
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(adapter_file),
                  metadata={"format": "pt"})
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()},
              str(out_dir / "head.safetensors"),
              metadata={"format": "pt", "labels": ",".join(SENTIMENT_LABELS)})
    return adapter_file


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
    sentfin: Path | None = None,
    tfns_train: Path | None = None,
    tfns_valid: Path | None = None,
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
    unknown = set(hyperparameters) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
    hp = {**DEFAULTS, **hyperparameters}
    started = time.perf_counter()
    _seed_everything(seed)
    rng = np.random.default_rng(seed)

    data, train_rows = _training_rows(sst2_train, fpb, sst2_rows, fpb_repeat, sentfin,
                                      tfns_train)
    base_ref, tokenizer, encoder, head = _lora_model(hp)
    n_trainable = (sum(p.numel() for p in encoder.parameters() if p.requires_grad)
                   + sum(p.numel() for p in head.parameters()))
    batcher = _Batcher(tokenizer, [t for t, _, _ in train_rows], max_length)
    class_w = _fpb_class_weights(data["fpb_train"], hp["fpb_class_weight_power"])
    steps, warmup, train_s = _train(encoder, head, batcher, train_rows, class_w, hp, epochs,
                                    rng, max_steps, progress)
    temperature, band, metrics = _calibrate_and_score(
        encoder, head, tokenizer, max_length, _eval_sets(data, sst2_dev, tfns_valid),
        fp16_adapter)
    adapter_file = _save(encoder, head, base_ref.name, out_dir, fp16_adapter)

    config = {
        "name": LORA_NAME,
        "task": "sentence sentiment: negative / neutral / positive",
        "labels": list(SENTIMENT_LABELS),
        "base_model": {"name": base_ref.name, "revision": base_ref.revision},
        "hidden_size": int(head.in_features),
        "max_length": max_length,
        "pooling": POOLING,
        "sentence_pooling": "mean of last hidden states over non-padding tokens",
        "temperature": round(temperature, 6),
        "neutral_band": band,
        "label_rule": "positive if p(pos) - p(neg) >= neutral_band, negative if <= "
                      "-neutral_band, else neutral; band fitted on the calibration slices",
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
        "data": _data_notes(data, sst2_train, fpb, sst2_dev, sentfin, tfns_train, tfns_valid),
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


def _data_notes(data: dict[str, Any], sst2_train: Path, fpb: Path, sst2_dev: Path | None,
                sentfin: Path | None, tfns_train: Path | None, tfns_valid: Path | None
                ) -> dict[str, Any]:
    """What was trained and calibrated on, with the split rules and licences."""
    return {
        "sst2_train": {"path": str(sst2_train), "rows_trained": len(data["sst2_train"]),
                       "rule": SST2_SUBSET_RULE, "licence": LICENCES["sst2"]},
        "fpb": {"path": str(fpb), "train_rows_trained": len(data["fpb_train"]),
                "heldout_rows": len(data["fpb_heldout"]), "split_rule": FPB_SPLIT_RULE,
                "licence": LICENCES["fpb"]},
        "calibration": {"fpb_rows": len(data["fpb_calib"]), "fpb_rule": FPB_CALIB_RULE,
                        "sst2_rows": len(data["sst2_calib"]), "sst2_rule": SST2_CALIB_RULE,
                        "method": "one temperature, mean of the sets' NLLs, L-BFGS on log T"},
        "sst2_dev": str(sst2_dev) if sst2_dev is not None else None,
        **_news_data_notes(data, sentfin, tfns_train, tfns_valid),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _figure_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(data, figure) rows of the model card, measured with the shipped label rule."""
    m = config["metrics"]
    before, after = m["before_calibration"], m["after_calibration"]
    final = m.get("with_neutral_band", after)
    names = {"tfns_valid": "TFNS validation (finance tweets)",
             "sentfin_heldout": "SEntFiN held-out (headlines, entities agree)",
             "fpb_heldout": "FPB low-agreement held-out"}
    sst = final.get("sst2_dev", {})
    rows = [(f"SST-2 dev, {sst.get('rows', 0)} sentences, sign of p(pos) − p(neg)",
             _pct(sst.get("polarity_accuracy")))]
    for key, title in names.items():
        if key in final:
            f = final[key]
            recall = " / ".join(_pct(f["recall"][label]) for label in SENTIMENT_LABELS)
            rows.append((f"{title}, {f['rows']:,} rows: accuracy (macro-F1)",
                         f"{_pct(f['accuracy'])} ({_pct(f.get('macro_f1'))})"))
            rows.append((f"{title}: recall negative / neutral / positive", recall))
    fpb_b, fpb_a = before["fpb_heldout"], after["fpb_heldout"]
    rows.append(("ECE (15 bins), FPB held-out, before → after temperature",
                 f"{fpb_b['ece']:.3f} → {fpb_a['ece']:.3f}"))
    if "sst2_dev" in after:
        rows.append(("ECE (15 bins), SST-2 dev on (neg, pos), before → after",
                     f"{before['sst2_dev']['ece_polar']:.3f} → "
                     f"{after['sst2_dev']['ece_polar']:.3f}"))
    return rows


def _data_lines(config: dict[str, Any]) -> str:
    data, hp = config["data"], config["hyperparameters"]
    cal = data["calibration"]
    lines = [
        f"- **SST-2** train: {data['sst2_train']['rows_trained']:,} rows "
        f"({data['sst2_train']['rule']}); cross-entropy over the renormalised (negative, "
        "positive) logits, since SST-2 has no neutral class.",
        f"- **Financial PhraseBank** (50–99 %-agreement sentences), the training part of the "
        f"fixed split ({data['fpb']['split_rule']}) less a calibration slice: "
        f"{data['fpb']['train_rows_trained']:,} rows, repeated {hp['fpb_repeat']}×.",
    ]
    if "sentfin" in data:
        sf = data["sentfin"]
        lines.append(f"- **SEntFiN 1.0** headlines: {sf['train_rows_trained']:,} rows "
                     f"({sf['split_rule']}); {sf['heldout_rows']:,} held out.")
    if "tfns" in data:
        tf = data["tfns"]
        lines.append(f"- **Twitter Financial News Sentiment** train file: "
                     f"{tf['train_rows_trained']:,} rows; its validation split is only "
                     "evaluated on.")
    lines.append(f"- **Calibration** (never trained on): {cal['sst2_rows']:,} SST-2 rows "
                 f"({cal['sst2_rule']}) and 1 in 20 hash buckets of each 3-way training set "
                 f"({cal['method']}); the neutral band is fitted on the same slices.")
    return "\n".join(lines)


def model_card(config: dict[str, Any]) -> str:
    """The README of the saved folder, with the figures this run measured."""
    hp, data, lora = config["hyperparameters"], config["data"], config["lora"]
    table = "\n".join(f"| {k} | {v} |" for k, v in _figure_rows(config))
    epochs = f"{hp['epochs']} epoch" + ("s" if hp["epochs"] != 1 else "")
    news_args = ""
    if "sentfin" in data:
        news_args += " \\\n        --sentfin ../shared/train/sentfin.tsv"
    if "tfns" in data:
        news_args += " --tfns ../shared/train/tfns_train.tsv"
    licences = ["SST / SST-2: no licence stated.",
                "Financial PhraseBank: **CC BY-NC-SA 3.0** (non-commercial, share-alike)."]
    licences += [data[k]["licence"] + "." for k in ("sentfin", "tfns") if k in data]
    band = config.get("neutral_band")
    rule = ("argmax of the three probabilities" if band is None else
            f"positive when p(pos) − p(neg) ≥ {band:.2f}, negative when ≤ −{band:.2f}, "
            "else neutral")
    return f"""# {config['name']}: MiniLM + LoRA sentiment model

Sentence sentiment (negative / neutral / positive) from `{config['base_model']['name']}` (the
built-in encoder) fine-tuned with LoRA adapters. Load it with
`tasks.models.sentiment.load_sentiment("{config['name']}")`; it needs no network.

- Base: `{config['base_model']['revision']}`.
- Adapters: r={lora['r']}, alpha={lora['alpha']}, dropout {lora['dropout']}, on query, key,
  value, attention output and both feed-forward layers of all six blocks; stored in
  {lora['adapter_dtype']} ({config['files']['adapter_bytes'] / 1e6:.1f} MB) and merged into
  the base weights at load, so inference is one plain MiniLM pass per sentence.
- Head: linear 384 → 3 on the mean of the token vectors (at most {config['max_length']}
  tokens); {config['trainable_parameters']:,} trainable parameters in all.
- Probabilities: softmax(logits / T), T = {config['temperature']:.3f}. Label: {rule}.
  Documents pool their sentences as `tasks.models.sentiment_base.pool_probs` says (pooling
  `{config['pooling']}`).

## Data
{_data_lines(config)}

## Recipe
AdamW, lr {hp['lr']} (head {hp['head_lr']}), weight decay {hp['weight_decay']},
{hp['warmup_ratio']:.0%} linear warm-up then linear decay, batch {hp['batch_size']}
({hp['batching']}), {epochs} = {hp['steps']} steps, seed {config['seed']}.
Training took {config['timing_s']['train'] / 60:.1f} min on a 2-core CPU. Reproduce:

    python -m tasks.training.train_sentiment --sst2 ../shared/eval/sst2/train.tsv \\
        --fpb ../shared/eval/fpb_lowagree.tsv --out tasks/models/assets/sentiment-lora{news_args} \\
        --sst2-rows {hp['sst2_rows']} --fpb-repeat {hp['fpb_repeat']} --epochs {hp['epochs']} \\
        --seed {config['seed']}

## Figures (data never trained on, with the shipped label rule; `python -m bench.sentiment_eval`)
| data | figure |
|---|---|
{table}

## Licences
{" ".join(licences)} The adapter and head are derived from FPB, so treat them as
non-commercial, share-alike; retrain without FPB for commercial use. Base model
all-MiniLM-L6-v2: Apache-2.0.
"""


def main(argv: list[str] | None = None) -> None:
    parser = training_parser(__doc__.splitlines()[0])
    parser.add_argument("--sst2-rows", type=int, default=20000)
    parser.add_argument("--fpb-repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--fpb-class-weight-power", type=float,
                        default=DEFAULTS["fpb_class_weight_power"])
    parser.add_argument("--sentfin", type=Path, default=None, help="SEntFiN 1.0 sentfin.tsv")
    parser.add_argument("--tfns", type=Path, default=None, help="TFNS tfns_train.tsv")
    parser.add_argument("--tfns-valid", type=Path, default=None,
                        help="TFNS validation TSV (evaluated only; default: beside --tfns)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    tfns_valid = args.tfns_valid or (args.tfns.with_name("tfns_valid.tsv") if args.tfns else None)
    dev = args.sst2_dev or args.sst2.with_name("dev.tsv")
    config = train_sentiment_model(
        args.sst2, args.fpb, args.out, args.seed,
        sst2_rows=args.sst2_rows, fpb_repeat=args.fpb_repeat, epochs=args.epochs,
        max_length=args.max_length, sst2_dev=dev if dev.is_file() else None,
        progress=not args.no_progress, fpb_class_weight_power=args.fpb_class_weight_power,
        sentfin=args.sentfin, tfns_train=args.tfns,
        tfns_valid=tfns_valid if tfns_valid is not None and tfns_valid.is_file() else None,
    )
    print(json.dumps(config["metrics"], indent=2))


if __name__ == "__main__":
    main()
