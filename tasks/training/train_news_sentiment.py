"""Teach the sentiment model news: its encoder, sentence head and document head together.

A head over the frozen pass reads what the encoder already knows, and the encoder was
taught the tone of sentences, not the news a story reports (bench/RESULTS.md: a head on
frozen features reaches 0.66 accuracy on the team's dev documents). Here the shipped LoRA
adapter keeps training, with two objectives on one pass:

- sentences (the sets the adapter was trained on, the same mix: SST-2 over negative and
  positive, FPB, SEntFiN and TFNS 3-way) through the sentence head, and through the document
  head as single-unit documents, so a single sentence keeps its label;
- the team's news documents (`tasks.training.news_docs`, train split): each document's units
  (title and lead, cleaned and split by the pipeline's clean step) through the encoder, their
  probabilities and vectors into `document_features`, then the document head; with
  `title_copies`, each titled document's headline alone is also a training document with
  the same label (a headline states the news; a neutral body must not hide it);
- with `--entity-weight` above 0, per-mention labels (NewsMTSC, SEntFiN entities and
  `contrast_pairs`) through an entity head on the same pass (`tasks.models.entity_sentiment`,
  its serving features), `entity_batch` mentions a step. `--refit-entity-head F` then refits
  that head alone on the trained encoder. The shipped adapter was trained without it
  (bench/RESULTS.md has the figures of a run with it).

The sentence head's temperature stays the shipped one (the features read calibrated
probabilities). The epoch with the best dev macro-F1 (plus the entity validation
macro-F1, when an entity head trains) is kept; the test split is only
reported, by `bench.sentiment_eval`. Then `--package` measures the int8 graph as runs use it
on dev, fits the neutral band there and writes the metadata.

    python -m tasks.training.train_news_sentiment --out /tmp/news-lora
    python -m tasks.training.train_news_sentiment --package /tmp/news-lora \
        --into tasks/models/assets/sentiment-lora
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.document_head import FEATURES, WEIGHTS, build_module, document_features
from tasks.models.document_head import feature_dim as doc_feature_dim
from tasks.models.encoder_pass import load_base_encoder, mean_pool
from tasks.models.entity_sentiment import (
    ENTITY_WEIGHTS,
    build_entity_head,
    entity_features,
    span_matrix,
    token_spans,
)
from tasks.models.lead import LEAD_SENTENCES
from tasks.models.registry import adapter_base
from tasks.models.sentiment import LORA_DIR
from tasks.models.sentiment_base import document_units
from tasks.record import SENTIMENT_LABELS, Document
from tasks.training import news_docs
from tasks.training.entity_data import LICENCES, Mention, contrast_pairs, entity_data
from tasks.training.news_docs import SHARED, doc_metrics, fit_band, macro_f1, news_documents
from tasks.training.train_sentiment import (
    _seed_everything,
    _training_rows,
    hyperparameter_flags,
    warmup_linear,
)

POLAR = [SENTIMENT_LABELS.index("negative"), SENTIMENT_LABELS.index("positive")]
DEFAULTS: dict[str, Any] = {"epochs": 3, "doc_batch": 8, "sentence_batch": 32, "lr": 3e-4,
                            "head_lr": 1e-3, "doc_head_lr": 1e-3, "weight_decay": 0.01,
                            "doc_weight": 1.0, "hidden": 64, "seed": 17, "sst2_rows": 20000,
                            "fpb_repeat": 3, "title_copies": 0, "entity_weight": 0.0,
                            "entity_batch": 32, "entity_hidden": 256, "contrast": 2000,
                            "contrast_opposite": 0.5}
# The entity head's features (`tasks.models.entity_sentiment.entity_features`): the mention's
# token states in these layers of the pass, and the sentence's mean state in the last.
SPAN_LAYERS = (-2, -1)


class Units:
    """Tokenised texts, padded per batch."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def tensors(self, texts: list[str]):
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]


class NewsModel:
    """The adapted encoder, sentence head, document head and entity head, for training."""

    def __init__(self, folder: Path, hidden: int, entity_hidden: int = 0):
        import torch
        from peft import PeftModel
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        base_ref = adapter_base(self.config, folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_ref.path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = PeftModel.from_pretrained(load_base_encoder(base_ref.path),
                                                     str(folder), is_trainable=True).float()
        dim = int(self.config["hidden_size"])
        self.head = torch.nn.Linear(dim, len(SENTIMENT_LABELS))
        self.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        self.arch = {"input_dim": doc_feature_dim(dim), "hidden": hidden}
        self.doc_head = build_module(self.arch)
        self.temperature = float(self.config["temperature"])
        self.units = Units(self.tokenizer, int(self.config["max_length"]))
        self.mean = self.scale = None  # feature standardisation, set from the start weights
        self.entity_config = {
            "features": {"span_layers": list(SPAN_LAYERS), "sentence_mean": True,
                         "describe": "mean of the mention's token states in layers 5 and 6, "
                                     "and the mean of all the sentence's token states in "
                                     "layer 6"},
            "head": {"input_dim": dim * (len(SPAN_LAYERS) + 1), "hidden": entity_hidden,
                     "activation": "gelu"}}
        self.entity_head = None
        if entity_hidden:
            self.entity_head = build_entity_head(self.entity_config)
            self.entity_head[2].p = 0.1  # dropout while training; the served head has p = 0

    def mention_spans(self, mentions: list[Mention]) -> list[tuple[int, int]]:
        """Each mention's token range in its sentence alone, as serving finds it."""
        enc = self.tokenizer([m.text for m in mentions], truncation=True,
                             max_length=self.units.max_length, return_offsets_mapping=True)
        return [token_spans(offsets, ((m.start, m.end),))[0]
                for offsets, m in zip(enc["offset_mapping"], mentions, strict=True)]

    def entity_logits(self, mentions: list[Mention], spans: list[tuple[int, int]]):
        """Entity-head logits, one mention per sentence."""
        return self.entity_head(self.entity_inputs(mentions, spans))

    def entity_inputs(self, mentions: list[Mention], spans: list[tuple[int, int]]):
        """The entity head's features, one mention per sentence: one padded pass, then each
        row's features by the serving function over its own (unpadded) tokens."""
        import torch

        ids, mask = self.units.tensors([m.text for m in mentions])
        res = self.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        rows = []
        for i, (a, b) in enumerate(spans):
            n = int(mask[i].sum())
            weights = torch.from_numpy(span_matrix([(a, b)], n))
            rows.append(entity_features([res.hidden_states[k][i, :n] for k in SPAN_LAYERS],
                                        weights))
        return torch.cat(rows)

    def pass_(self, texts: list[str]):
        """(logits, calibrated probs, L2-normalised vectors) of `texts`, one padded batch."""
        import torch

        ids, mask = self.units.tensors(texts)
        pooled = mean_pool(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state,
                           mask)
        logits = self.head(pooled)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return logits, probs, torch.nn.functional.normalize(pooled, dim=-1)

    def doc_logits(self, units: list[tuple[list[str], bool]]):
        """Document-head logits of documents given as (units, titled)."""
        import torch

        flat = [u for texts, _ in units for u in texts]
        _, probs, vectors = self.pass_(flat)
        rows, start = [], 0
        for texts, titled in units:
            end = start + len(texts)
            rows.append(document_features(probs[start:end], vectors[start:end], titled, texts))
            start = end
        x = (torch.stack(rows) - self.mean) / self.scale
        return self.doc_head(x)

    def set_standardisation(self, units: list[tuple[list[str], bool]]) -> None:
        """Feature mean and scale over the training documents, from the starting weights."""
        import torch

        self.mean, self.scale = torch.zeros(self.arch["input_dim"]), torch.ones(
            self.arch["input_dim"])
        rows = []
        with torch.no_grad():
            for k in range(0, len(units), 64):
                flat = [u for texts, _ in units[k:k + 64] for u in texts]
                _, probs, vectors = self.pass_(flat)
                start = 0
                for texts, titled in units[k:k + 64]:
                    end = start + len(texts)
                    rows.append(document_features(probs[start:end], vectors[start:end],
                                                  titled, texts))
                    start = end
        x = torch.stack(rows)
        self.mean, self.scale = x.mean(dim=0), x.std(dim=0) + 1e-6

    def eval_entities(self, mentions: list[Mention], spans: list[tuple[int, int]]
                      ) -> np.ndarray:
        """(n, 3) entity-head logits, in eval mode."""
        import torch

        self.encoder.eval()
        self.entity_head.eval()
        with torch.no_grad():
            out = [self.entity_logits(mentions[k:k + 64], spans[k:k + 64]).numpy()
                   for k in range(0, len(mentions), 64)]
        self.encoder.train()
        self.entity_head.train()
        return np.concatenate(out) if out else np.zeros((0, len(SENTIMENT_LABELS)))

    def eval_docs(self, units: list[tuple[list[str], bool]]) -> np.ndarray:
        import torch

        self.encoder.eval()
        self.doc_head.eval()
        with torch.no_grad():
            out = [torch.softmax(self.doc_logits(units[k:k + 16]), dim=-1).numpy()
                   for k in range(0, len(units), 16)]
        self.encoder.train()
        self.doc_head.train()
        return np.concatenate(out)


def _doc_units(items: list[dict]) -> list[tuple[list[str], bool]]:
    return [document_units(d, LEAD_SENTENCES) for d in news_documents(items)]


def train(hp: dict[str, Any], out: Path, progress: bool = True,
          start: Path = LORA_DIR) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    _seed_everything(hp["seed"])
    rng = np.random.default_rng(hp["seed"])
    entities = hp["entity_weight"] > 0
    model = NewsModel(start, hp["hidden"], hp["entity_hidden"] if entities else 0)
    ent_train, ent_val = _entity_sets(hp) if entities else ([], {})
    ent_spans = model.mention_spans(ent_train) if entities else []
    val_spans = {k: model.mention_spans(v) for k, v in ent_val.items()}
    ent_order = rng.permutation(len(ent_train))
    train_items = news_docs.labelled_items("train")
    dev_items = news_docs.labelled_items("dev")
    train_units, dev_units = _doc_units(train_items), _doc_units(dev_items)
    labels = [SENTIMENT_LABELS.index(i["label"]) for i in train_items]
    if hp["title_copies"]:  # the headline alone states the news: teach it as a document too
        titled = [(u[:1], True, y) for (u, t), y in zip(train_units, labels, strict=True)
                  if t and len(u) > 1]
        train_units += [(u, t) for u, t, _ in titled]
        labels += [y for _, _, y in titled]
    y_docs = torch.tensor(labels)
    y_dev = np.array([SENTIMENT_LABELS.index(i["label"]) for i in dev_items])
    _, sentence_rows = _training_rows(
        SHARED / "eval" / "sst2" / "train.tsv", SHARED / "eval" / "fpb_lowagree.tsv",
        hp["sst2_rows"], hp["fpb_repeat"], SHARED / "train" / "sentfin.tsv",
        SHARED / "train" / "tfns_train.tsv")
    model.set_standardisation(train_units)
    params = [
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": hp["lr"]},
        {"params": list(model.head.parameters()), "lr": hp["head_lr"]},
        {"params": list(model.doc_head.parameters()), "lr": hp["doc_head_lr"]}]
    if entities:
        params.append({"params": list(model.entity_head.parameters()), "lr": hp["head_lr"]})
    optimizer = torch.optim.AdamW(params, weight_decay=hp["weight_decay"])
    per_epoch = (len(train_units) + hp["doc_batch"] - 1) // hp["doc_batch"]
    steps = per_epoch * hp["epochs"]
    scheduler = warmup_linear(optimizer, steps, max(1, steps // 20))
    sentence_order = rng.permutation(len(sentence_rows))
    ce = torch.nn.functional.cross_entropy
    history, best, step, cursor, ent_cursor = [], None, 0, 0, 0
    started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="news sentiment", unit="step")
    model.encoder.train()
    for epoch in range(hp["epochs"]):
        for batch in np.array_split(rng.permutation(len(train_units)), per_epoch):
            rows = [sentence_rows[i] for i in
                    sentence_order[cursor:cursor + hp["sentence_batch"]]]
            cursor = (cursor + hp["sentence_batch"]) % max(1, len(sentence_rows) -
                                                            hp["sentence_batch"])
            texts = [t for t, _, _ in rows]
            y = torch.tensor([yy for _, yy, _ in rows])
            three = torch.tensor([task == 1 for _, _, task in rows])
            logits, probs, vectors = model.pass_(texts)
            # the document head on each sentence as a single-unit document
            single = torch.stack([document_features(probs[i:i + 1], vectors[i:i + 1], False,
                                                    texts[i:i + 1])
                                  for i in range(len(rows))])
            doc_z = model.doc_head((single - model.mean) / model.scale)
            loss = logits.new_zeros(())
            for z in (logits, doc_z):
                if three.any():
                    loss = loss + ce(z[three], y[three], reduction="sum")
                if (~three).any():  # SST-2 (0 negative, 1 positive): over those two logits
                    loss = loss + ce(z[~three][:, POLAR], y[~three], reduction="sum")
            loss = loss / len(rows)
            doc_loss = ce(model.doc_logits([train_units[i] for i in batch]), y_docs[batch])
            loss = loss + hp["doc_weight"] * doc_loss
            if entities:  # mentions, each in its own sentence, through the entity head
                pick = [ent_order[(ent_cursor + j) % len(ent_train)]
                        for j in range(hp["entity_batch"])]
                ent_cursor = (ent_cursor + hp["entity_batch"]) % len(ent_train)
                z = model.entity_logits([ent_train[i] for i in pick],
                                        [ent_spans[i] for i in pick])
                y_ent = torch.tensor([ent_train[i].label for i in pick])
                loss = loss + hp["entity_weight"] * ce(z, y_ent)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", doc=f"{doc_loss.item():.3f}")
        p_dev = model.eval_docs(dev_units)
        metrics = doc_metrics(p_dev, y_dev, dev_items, None)
        for name, mentions in ent_val.items():
            pred = model.eval_entities(mentions, val_spans[name]).argmax(axis=1)
            metrics[f"{name}_macro_f1"] = macro_f1(pred, np.array([m.label for m in mentions]))
        # Kept by the document dev macro-F1, plus the entity validation macro-F1 when trained.
        metrics["choice"] = metrics["macro_f1"] + (np.mean(
            [metrics[f"{n}_macro_f1"] for n in ent_val]) if ent_val else 0.0)
        history.append({"epoch": epoch + 1, "step": step, **metrics,
                        "seconds": round(time.perf_counter() - started)})
        print(json.dumps(history[-1]), flush=True)
        if best is None or metrics["choice"] > best["choice"]:
            best = history[-1]
            _save(model, out, hp, history, start)
    bar.close()
    return {"best": best, "history": history}


def refit_entity_head(trained: Path, hp: dict[str, Any], epochs: int = 30,
                      progress: bool = True) -> dict[str, Any]:
    """The entity head alone, on the trained encoder's frozen features (the other heads and
    the tagger keep reading the same pass): more passes over the mentions than the joint
    training makes. The epoch with the best mean validation macro-F1 is kept, and only if it
    beats the jointly trained head there (then `ENTITY_WEIGHTS` is replaced, the joint head
    kept as `entity_head_joint.safetensors`)."""
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    hp = {**hp, **json.loads((trained / "training.json").read_text())["hyperparameters"]}
    _seed_everything(hp["seed"])
    model = NewsModel(trained, hp["hidden"], hp["entity_hidden"])
    model.entity_head.load_state_dict(load_file(str(trained / ENTITY_WEIGHTS)))
    model.encoder.eval()
    train, val = _entity_sets(hp)

    def features(mentions: list[Mention]) -> torch.Tensor:
        spans = model.mention_spans(mentions)
        with torch.no_grad():
            return torch.cat([model.entity_inputs(mentions[k:k + 64], spans[k:k + 64])
                              for k in tqdm(range(0, len(mentions), 64), disable=not progress,
                                            desc="entity features")])

    x, y = features(train), torch.tensor([m.label for m in train])
    val_x = {n: (features(ms), np.array([m.label for m in ms])) for n, ms in val.items()}

    def score(head) -> float:
        head.eval()
        with torch.no_grad():
            f1 = [macro_f1(head(vx).argmax(dim=1).numpy(), vy) for vx, vy in val_x.values()]
        head.train()
        return float(np.mean(f1))

    joint = score(model.entity_head)
    head = build_entity_head(model.entity_config)
    head[2].p = 0.1
    opt = torch.optim.AdamW(head.parameters(), lr=hp["head_lr"], weight_decay=0.01)
    gen = torch.Generator().manual_seed(hp["seed"])
    best, history = None, []
    for epoch in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(256):
            loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        history.append(round(score(head), 4))
        if best is None or history[-1] > best[0]:
            best = (history[-1], epoch + 1, {k: v.clone() for k, v in head.state_dict().items()})
    out = {"joint_val_macro_f1": round(joint, 4), "refit_val_macro_f1": best[0],
           "epoch_kept": best[1], "history": history, "replaced": best[0] > joint}
    if out["replaced"]:
        shutil.copy(trained / ENTITY_WEIGHTS, trained / "entity_head_joint.safetensors")
        save_file({k: v.contiguous() for k, v in best[2].items()}, str(trained / ENTITY_WEIGHTS))
        record = json.loads((trained / "training.json").read_text())
        record["entity_head_refit"] = {"epochs": epochs, "lr": hp["head_lr"], "batch": 256,
                                       **out}
        (trained / "training.json").write_text(json.dumps(record, indent=2))
    return out


def _entity_sets(hp: dict[str, Any]) -> tuple[list[Mention], dict[str, list[Mention]]]:
    """Training mentions (NewsMTSC and SEntFiN training rows, and `contrast` sentences joined
    from two SEntFiN headlines), and the validation slices the epoch is chosen on."""
    sets, _ = entity_data(SHARED / "train", None)
    train = sets["newsmtsc_train"] + sets["sentfin_train"]
    if hp["contrast"]:
        train += contrast_pairs(sets["sentfin_train"], hp["contrast"], hp["seed"],
                                hp["contrast_opposite"])
    return train, {"newsmtsc_val": sets["newsmtsc_val"], "sentfin_val": sets["sentfin_val"]}


def _save(model: NewsModel, out: Path, hp: dict[str, Any], history: list[dict],
          start: Path) -> None:
    """The adapter (float16, as shipped), both heads and the training record."""
    import torch
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "README.md"):
        if (start / name).is_file():
            shutil.copy(start / name, out / name)
    model.encoder.peft_config["default"].base_model_name_or_path = \
        model.config["base_model"]["name"]
    model.encoder.save_pretrained(str(out), save_embedding_layers=False)
    adapter = out / "adapter_model.safetensors"
    save_file({k: v.half().contiguous() for k, v in load_file(str(adapter)).items()},
              str(adapter), metadata={"format": "pt"})
    save_file({k: v.detach().contiguous() for k, v in model.head.state_dict().items()},
              str(out / "head.safetensors"),
              metadata={"format": "pt", "labels": ",".join(SENTIMENT_LABELS)})
    save_file({k: v.detach().contiguous() for k, v in model.doc_head.state_dict().items()},
              str(out / WEIGHTS))
    if model.entity_head is not None:
        save_file({k: v.detach().contiguous() for k, v in model.entity_head.state_dict().items()},
                  str(out / ENTITY_WEIGHTS))
    with torch.no_grad():
        entry = {"features": FEATURES, "architecture": model.arch,
                 "standardize": {"mean": model.mean.double().tolist(),
                                 "scale": model.scale.double().tolist()}}
    record = {"hyperparameters": hp, "history": history, "start": str(start),
              "document_head": entry}
    if model.entity_head is not None:
        record["entity_head"] = model.entity_config
    (out / "training.json").write_text(json.dumps(record, indent=2))


def package(trained: Path, into: Path) -> dict[str, Any]:
    """Copy the trained weights into the model folder, fit the band on dev with the int8 graph
    as runs use it, and write the metadata (config.json)."""
    from tasks.io.atomic import atomic_write_bytes
    from tasks.models.onnx_backend import _lora_class

    record = json.loads((trained / "training.json").read_text())
    for name in ("adapter_model.safetensors", "head.safetensors", WEIGHTS):
        shutil.copy(trained / name, into / name)
    if "entity_head" in record:
        shutil.copy(trained / ENTITY_WEIGHTS, into / ENTITY_WEIGHTS)
    config_path = into / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.setdefault("sentence_neutral_band", config.get("neutral_band"))
    best = max(record["history"], key=lambda h: h.get("choice", h["macro_f1"]))
    config["document_head"] = {**record["document_head"], "neutral_band": None,
                               "training": {"hyperparameters": record["hyperparameters"],
                                            "epoch_kept": best["epoch"],
                                            "history": record["history"],
                                            "command": f"python -m tasks.training."
                                                       f"train_news_sentiment --start "
                                                       f"{record.get('start', LORA_DIR)} "
                                                       f"--out {trained} (hyperparameters "
                                                       f"above), then --package {trained}"}}
    config.pop("entity_head", None)
    atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    if "entity_head" in record:
        config = entity_head_entry(
            into, record["entity_head"],
            {"jointly": "with the other heads (above), entity_weight, entity_batch",
             **({"refit": record["entity_head_refit"]} if "entity_head_refit" in record
                else {})}, record["hyperparameters"])
    model = _lora_class()(into, "minilm-lora")
    dev_items = news_docs.labelled_items("dev")
    docs = model.score(news_documents(dev_items))
    probs = np.array([d.sentiment_probs for d in docs])
    y_dev = np.array([SENTIMENT_LABELS.index(i["label"]) for i in dev_items])
    band = fit_band(probs, y_dev)
    dev = doc_metrics(probs, y_dev, dev_items, band)
    single_band = fit_single_unit_band(model)
    counts = {s: len(news_docs.labelled_items(s)) for s in ("train", "dev", "test")}
    config["document_head"]["neutral_band"] = band
    config["document_head"]["single_unit_band"] = single_band
    config["document_head"]["dev_int8"] = dev
    config["neutral_band"] = band
    config["label_rule"] = (
        "the document head (tasks.models.document_head) reads the title's, the first "
        "sentence's and the lead's sentence vectors and probabilities, and which way a "
        "results table's figures went (tasks.models.reported_figures); positive if p(pos) - "
        "p(neg) >= neutral_band, negative if <= -neutral_band, else neutral; neutral_band "
        "fitted on the team's news documents (dev split, macro-F1); a one-unit text (a "
        f"headline or a sentence) uses single_unit_band = {single_band} instead, fitted on "
        "the sentence sets' calibration slices")
    config["data"]["news_docs"] = {
        "path": "tasks/training/news_docs/labels.jsonl", "items": counts,
        "split_rule": news_docs.SPLIT_RULE,
        "guidelines": "tasks/training/news_docs/GUIDELINES.md",
        "licence": "textdigest news document labels (Apache-2.0) on items from "
                   + "; ".join(news_docs.LICENCES.values())}
    atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    return {"band": band, "single_unit_band": single_band, "dev": dev}


def entity_head_entry(into: Path, head: dict[str, Any], training: dict[str, Any],
                      hp: dict[str, Any]) -> dict[str, Any]:
    """Write an entity head's `config.json` entry into the model folder `into` (its weights
    already there): its features and architecture (`head`), how it was trained, then its
    temperature, validation figures (fitted with the int8 graph) and data with licences."""
    from tasks.io.atomic import atomic_write_bytes
    from tasks.models.onnx_backend import _lora_class

    config_path = into / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["entity_head"] = {**head, "temperature": 1.0, "neutral_band": None,
                             "training": training}
    atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    config["entity_head"] |= fit_entity_head(_lora_class()(into, "minilm-lora"), hp)
    config.get("data", {}).pop("newsmtsc", None)  # where earlier packagings put it
    atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    return config


def fit_entity_head(model, hp: dict[str, Any]) -> dict[str, Any]:
    """The entity head's temperature, fitted on the validation mentions with the int8 graph
    as runs use it, its label rule, data and validation figures (config.json `entity_head`)."""
    from tasks.models.entity_sentiment import PassEntitySentiment
    from tasks.training.entity_data import HELDOUT_RULE, VAL_RULE
    from tasks.training.train_sentiment import fit_temperature

    _, val = _entity_sets(hp)
    head = PassEntitySentiment(model)
    sets = {}
    for name, mentions in val.items():
        z = np.concatenate(head.logits([(m.text, ((m.start, m.end),)) for m in mentions]))
        sets[name] = (z, np.array([m.label for m in mentions]))
    temperature = fit_temperature(list(sets.values()), np.zeros((0, 3)), np.zeros(0))
    return {
        "temperature": round(temperature, 6),
        "label_rule": "arg-max of the pooled probabilities (softmax of logits / temperature); "
                      "an entity's mentions: the mean of its title mentions counts "
                      "title_weight, the mean of its lead mentions the rest",
        "data": {"mentions": "NewsMTSC train (Hamborg & Donnay, EACL 2021) and SEntFiN 1.0 "
                             "entities (Sinha et al., 2022), with sentences joined from two "
                             f"SEntFiN headlines ({hp['contrast']}, contrast_pairs)",
                 # the data entries (with licences): the head's own here, the others the
                 # model's (config.json `data`)
                 "sets": ["newsmtsc", "sentfin"],
                 "newsmtsc": {
                     "path": "../shared/train/newsmtsc_train.jsonl",
                     "dev": "newsmtsc_dev_rw.jsonl, newsmtsc_dev_mt.jsonl (evaluated only)",
                     "licence": LICENCES["newsmtsc"]},
                 "validation": VAL_RULE, "held_out": HELDOUT_RULE},
        "validation_int8": {name: {"rows": len(y), "macro_f1": round(macro_f1(
            z.argmax(axis=1), y), 4), "accuracy": round(float(
                (z.argmax(axis=1) == y).mean()), 4)} for name, (z, y) in sets.items()}}


def fit_single_unit_band(model) -> float:
    """The band for one-unit texts: the best mean accuracy over the sentence sets'
    calibration slices (never trained on), as the sentence model's band was fitted."""
    from tasks.training.sentiment_data import read_labelled
    from tasks.training.train_head import read_tsv
    from tasks.training.train_sentiment import fit_neutral_band, select_data

    data = select_data(read_tsv(SHARED / "eval" / "sst2" / "train.tsv"),
                       read_tsv(SHARED / "eval" / "fpb_lowagree.tsv"), 0,
                       {"sentfin": read_labelled(SHARED / "train" / "sentfin.tsv"),
                        "tfns": read_labelled(SHARED / "train" / "tfns_train.tsv")})
    sets = []
    for name in ("fpb_calib", "sentfin_calib", "tfns_calib"):
        texts = [t for t, _ in data[name]]
        docs = model.score([Document(doc_id=str(i), source="calib", raw_text=t, text=t,
                                     sentences=[t]) for i, t in enumerate(texts)])
        sets.append((np.array([d.sentiment_probs for d in docs]),
                     np.array([y for _, y in data[name]])))
    return fit_neutral_band(sets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the trained weights")
    parser.add_argument("--package", type=Path, help="a trained folder to package")
    parser.add_argument("--into", type=Path, default=LORA_DIR)
    parser.add_argument("--start", type=Path, default=LORA_DIR,
                        help="the sentence-trained adapter folder to start from (the shipped "
                             "one's start: tasks/models/assets/sentiment-lora at commit "
                             "73b423c)")
    parser.add_argument("--refit-entity-head", type=Path,
                        help="a trained folder: refit its entity head on the frozen encoder")
    parser.add_argument("--no-progress", action="store_true")
    hyperparameter_flags(parser, DEFAULTS)
    args = parser.parse_args(argv)
    hp = {k: getattr(args, k) for k in DEFAULTS}
    if args.refit_entity_head:
        print(json.dumps(refit_entity_head(args.refit_entity_head, hp,
                                           progress=not args.no_progress)))
        return
    if args.package:
        print(json.dumps(package(args.package, args.into), indent=2))
        return
    if not args.out:
        parser.error("--out or --package")
    print(json.dumps(train(hp, args.out, not args.no_progress, args.start)["best"]))


if __name__ == "__main__":
    main()
