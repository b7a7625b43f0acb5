"""Teach the shared encoder pass to find entities: the tagger head, on CoNLL-2003.

The head (`tasks.models.entity_tagger`) reads the pass `minilm-lora` already makes for
sentiment (its encoder is not changed here, so no sentiment figure moves) and each word's
shape (`tasks.models.token_shape`). Each CoNLL sentence trains three times, as written, in
Title Case and in capitals: the encoder's input (uncased) is the same, only the shape differs,
so one encoder pass serves the three. Beside CoNLL, the team's name labels on today's news
(`tasks.training.news_spans`: headlines and first sentences) and SEntFiN's silver headline
names train the same way. A fixed schedule (no epoch chosen on dev); dev is only
reported. The standardisation of the states is folded into the first layer, so the saved head
reads the raw states.

    python -m tasks.training.train_entity_tagger --out /tmp/tagger
    python -m tasks.training.train_entity_tagger --out /tmp/tagger --into \
        tasks/models/assets/sentiment-lora
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.entity_tagger import TAGGER_WEIGHTS, TAGS, build_tagger
from tasks.models.sentiment import LORA_DIR, LoraSentiment
from tasks.models.token_shape import (
    SHAPE_DIM,
    SHAPE_FEATURES,
    first_pieces,
    token_shapes,
    word_spans,
)
from tasks.training.conll import (
    IGNORE,
    SOURCE,
    Sentence,
    capitals,
    is_capitals_headline,
    read_conll,
    title_case,
    token_labels,
)
from tasks.training.news_docs import SHARED
from tasks.training.news_spans import LABELS_FILE as NEWS_SPANS
from tasks.training.news_spans import SOURCE as NEWS_SPANS_SOURCE
from tasks.training.news_spans import sentences as news_sentences

CONLL = SHARED / "train" / "conll2003"
SENTFIN = SHARED / "train" / "sentfin.tsv"
DEFAULTS: dict[str, Any] = {"layers": [4, 5, 6], "hidden": 256, "rnn": 128, "dropout": 0.3,
                            "epochs": 4, "batch": 32, "lr": 2e-3, "weight_decay": 0.01,
                            "seed": 5}


def word_states(model: LoraSentiment, sentences: list[Sentence], layers: list[int],
                batch: int = 64) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per sentence: the first pieces' states of `layers` (words, len(layers) * hidden), the
    shapes of its three casings (3, words, SHAPE_DIM), the word labels and the words'
    character ranges."""
    import torch

    out = []
    for b in range(0, len(sentences), batch):
        chunk = sentences[b:b + batch]
        enc = model.tokenizer([s.text for s in chunk], truncation=True,
                              max_length=model.max_length, padding=True, return_tensors="pt",
                              return_offsets_mapping=True)
        with torch.inference_mode():
            hidden = model._encoder(input_ids=enc["input_ids"],
                                    attention_mask=enc["attention_mask"],
                                    output_hidden_states=True).hidden_states
        for j, s in enumerate(chunk):
            word_ids = enc.word_ids(j)
            offsets = [tuple(x) for x in enc["offset_mapping"][j].tolist()]
            pieces = first_pieces(word_ids)
            labels = token_labels(s, offsets, word_ids)
            states = torch.cat([hidden[k][j, pieces] for k in layers], dim=-1).numpy()
            shapes = np.stack([token_shapes(s.write(words), offsets, word_ids)[pieces]
                               for words in (s.words, title_case(s.words, s.joined),
                                             capitals(s.words))])
            out.append((states.astype(np.float16), shapes, np.array([labels[i] for i in pieces]),
                        word_spans(offsets, word_ids)))
    return out


def _batch(items: list[tuple[np.ndarray, np.ndarray]]):
    import torch

    n = max(len(x) for x, _ in items)
    x = torch.zeros(len(items), n, items[0][0].shape[1])
    y = torch.full((len(items), n), IGNORE)
    for i, (a, b) in enumerate(items):
        x[i, : len(a)], y[i, : len(b)] = torch.from_numpy(a), torch.from_numpy(b)
    return x, y


def tag_spans(tagger, sentences: list[Sentence], rows: list[np.ndarray],
              words: list[list[tuple[int, int]]]) -> list[set[tuple[int, int, str]]]:
    """Each sentence's entities as CoNLL token ranges, as `tasks.training.ner_scores`
    scores them."""
    import torch

    from tasks.models.entity_tagger import decode, viterbi_tags
    from tasks.training.ner_scores import char_to_tokens

    out = []
    with torch.no_grad():
        for s, x, w in zip(sentences, rows, words, strict=True):
            z = tagger(torch.from_numpy(x)[None])[0].numpy()
            out.append(char_to_tokens(s, [(w[a][0], w[b - 1][1], kind)
                                          for a, b, kind in decode(viterbi_tags(z))]))
    return out


def fold_standardisation(tagger, mu: np.ndarray, sd: np.ndarray, n_states: int) -> None:
    """Make the first layer read raw states: W x' + b with x' = (x - mu) / sd on the states."""
    import torch

    lin = tagger.proj[0]
    with torch.no_grad():
        w = lin.weight[:, :n_states] / torch.from_numpy(sd)
        lin.bias -= (w * torch.from_numpy(mu)).sum(dim=1)
        lin.weight[:, :n_states] = w


def silver_headlines(args: argparse.Namespace, model: LoraSentiment) -> list[Sentence]:
    """The SEntFiN headlines with their names tagged: as written by --write-silver
    (`--silver`), else typed now by the model's installed tagger (none: `--headlines ''`)."""
    if args.silver:  # typed earlier, by the tagger of the previous encoder
        return [Sentence(tuple(r["words"]), tuple(r["tags"])) for r in
                map(json.loads, args.silver.read_text(encoding="utf-8").splitlines())]
    if not args.headlines:
        return []
    from tasks.models.entity_finder import EntityFinder
    from tasks.training.headline_names import headline_sentences, retype

    silver = headline_sentences(args.headlines)
    if model.has_tagger:
        silver = retype(silver, EntityFinder(model))
    model.cache.clear()
    return silver


def write_silver(path: Path, silver: list[Sentence]) -> None:
    path.write_text("".join(json.dumps({"words": list(s.words), "tags": list(s.tags)}) + "\n"
                            for s in silver), encoding="utf-8")


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from tasks.training.ner_scores import report

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = LoraSentiment(LORA_DIR, "minilm-lora")
    t0 = time.time()
    train_s, dev_s = read_conll(args.conll / "train.txt"), read_conll(args.conll / "dev.txt")
    silver = silver_headlines(args, model)
    news = news_sentences(args.news) if args.news else []
    n_conll = len(train_s)
    train_s = train_s + silver + news
    train_f = word_states(model, train_s, args.layers)
    dev_f = word_states(model, dev_s, args.layers)
    print(json.dumps({"encoded": len(train_f) + len(dev_f), "s": round(time.time() - t0)}),
          flush=True)
    states = np.concatenate([f[0] for f in train_f]).astype(np.float32)
    mu, sd = states.mean(0), states.std(0) + 1e-4
    n_states = states.shape[1]
    del states

    def rows(feats, casing):
        return [np.concatenate([(f[0].astype(np.float32) - mu) / sd, f[1][casing]], axis=1)
                for f in feats]

    items = [(x, f[2]) for c in range(3) for x, f in zip(rows(train_f, c), train_f,
                                                         strict=True)]
    config = {"input_dim": n_states + SHAPE_DIM, "hidden": args.hidden, "rnn": args.rnn,
              "dropout": args.dropout}
    tagger = build_tagger(config)
    opt = torch.optim.AdamW(tagger.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * (len(items) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    for epoch in range(args.epochs):
        tagger.train()
        order = rng.permutation(len(items))
        total = 0.0
        for b in range(0, len(order) - args.batch + 1, args.batch):
            x, y = _batch([items[i] for i in order[b:b + args.batch]])
            loss = torch.nn.functional.cross_entropy(tagger(x).reshape(-1, len(TAGS)),
                                                     y.reshape(-1), ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
        print(json.dumps({"epoch": epoch, "loss": round(total / (len(order) // args.batch), 4),
                          "s": round(time.time() - t0)}), flush=True)
    tagger.eval()
    fold_standardisation(tagger, mu, sd, n_states)
    metrics = {}
    for casing, (name, cased) in enumerate((("as written", lambda w: w),
                                            ("title case", title_case),
                                            ("capitals", capitals))):
        raw = [np.concatenate([f[0].astype(np.float32), f[1][casing]], axis=1) for f in dev_f]
        variant = [Sentence(cased(s.words), s.tags) for s in dev_s]
        metrics[name] = report(variant, tag_spans(tagger, variant, raw, [f[3] for f in dev_f]))
    summary = {
        "dev typed F1": metrics["as written"]["typed PER/ORG/LOC"]["f1"],
        "dev untyped F1": metrics["as written"]["untyped"]["f1"],
        "dev capitals headlines untyped F1":
            metrics["as written"]["capitals headlines, untyped"]["f1"],
        "dev Title Case copy typed F1": metrics["title case"]["typed PER/ORG/LOC"]["f1"],
        "dev capitals copy typed F1": metrics["capitals"]["typed PER/ORG/LOC"]["f1"],
        "capitals headlines": sum(is_capitals_headline(s) for s in dev_s),
    }
    print(json.dumps(summary), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    weights = {k: v.contiguous() for k, v in tagger.state_dict().items()}
    save_file(weights, str(out / TAGGER_WEIGHTS))
    section = {
        "weights": TAGGER_WEIGHTS, **config, "layers": args.layers, "tags": list(TAGS),
        "shape_features": list(SHAPE_FEATURES), "reads": "first piece of each word",
        "data": {"conll2003": SOURCE,
                 "casings": "each sentence as written, in Title Case and in capitals",
                 "headlines": (f"{len(silver)} SEntFiN 1.0 headlines (MIT) whose annotated "
                               "entities are names, tagged where they stand, typed by "
                               + ("the tagger installed before this one (on the previous "
                                  "encoder; --write-silver, then --silver)" if args.silver
                                  else "the installed tagger trained on CoNLL alone")
                               + " (tasks.training.headline_names)"
                               if silver else None),
                 "news": (f"{len(news)} units (title, first sentences) of HuffPost and "
                          "Reuters-21578 news, their names labelled by the team "
                          "(tasks.training.news_spans)" if news else None)},
        "training": {k: getattr(args, k) for k in DEFAULTS if k != "layers"},
        "metrics": {"torch fp32, CoNLL-2003 dev (exact spans)": summary},
        "encoder": "this model's pass, unchanged by the tagger's training",
    }
    (out / "entity_tagger.json").write_text(json.dumps(section, indent=2) + "\n",
                                            encoding="utf-8")
    if args.into:
        into = Path(args.into)
        shutil.copy2(out / TAGGER_WEIGHTS, into / TAGGER_WEIGHTS)
        config_path = into / "config.json"
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
        cfg["entity_tagger"] = section
        cfg["data"]["conll2003"] = {  # the card lists every data entry with its licence
            "path": "../shared/train/conll2003/train.txt", "used_for": "the entity tagger",
            "sentences_trained": n_conll, "casings": section["data"]["casings"],
            "licence": ("CoNLL-2003 annotations: free for research; text: Reuters RCV1, "
                        "Reuters' terms for research use")}
        if silver:
            cfg["data"]["sentfin"]["tagger_headlines"] = len(silver)
        if news:
            cfg["data"]["news_spans"] = {
                "path": "tasks/training/news_spans/labels.jsonl", "used_for": "the entity "
                "tagger", "units_trained": len(news), "casings": section["data"]["casings"],
                "guidelines": "tasks/training/news_spans/GUIDELINES.md",
                "licence": NEWS_SPANS_SOURCE}
        config_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return summary


def _path_or_none(value: str) -> Path | None:
    return Path(value) if value else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tasks.training.train_entity_tagger",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conll", type=Path, default=CONLL, help="folder with train.txt, dev.txt")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--into", type=Path, help="also install into this model folder")
    ap.add_argument("--headlines", type=_path_or_none, default=SENTFIN,
                    help="SEntFiN TSV for silver headline names (tasks.training."
                         "headline_names); '' for CoNLL alone")
    ap.add_argument("--news", type=_path_or_none, default=NEWS_SPANS,
                    help="the team's news name labels (tasks.training.news_spans); '' for "
                         "none")
    ap.add_argument("--write-silver", type=Path,
                    help="only write the silver headlines, typed by the installed tagger, to "
                         "this JSONL, and stop: keep them before the encoder they read changes")
    ap.add_argument("--silver", type=Path,
                    help="silver headlines from --write-silver, instead of typing them now")
    for key, value in DEFAULTS.items():
        if isinstance(value, list):
            ap.add_argument(f"--{key}", type=int, nargs="+", default=value)
        else:
            ap.add_argument(f"--{key}", type=type(value), default=value)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.write_silver:  # only the headlines, before the encoder they read changes
        silver = silver_headlines(args, LoraSentiment(LORA_DIR, "minilm-lora"))
        write_silver(args.write_silver, silver)
        return {"silver": len(silver)}
    return train(args)


if __name__ == "__main__":
    main()
