"""Train the pass's entity head on its frozen token states: the mention layer
(`tasks.models.mention_layer`), so entity sentiment needs no second encoder pass.

The sentiment model's encoder, sentence head, document head and tagger stay as they are:
this reads the token states the served pass keeps (layers 5 and 6) for each training
sentence once, then trains only the head on them. The data are the entity objective's of
`train_news_sentiment` (NewsMTSC train, SEntFiN training entities, sentences joined from two
SEntFiN headlines); the epoch with the best mean validation macro-F1 is kept. `--into`
writes the head into the model folder and fits its temperature on the validation mentions
with the int8 graph as runs use it.

    python -m tasks.training.train_entity_head --out /tmp/entity-head
    python -m tasks.training.train_entity_head --package /tmp/entity-head \\
        --into tasks/models/assets/sentiment-lora
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.entity_sentiment import ENTITY_WEIGHTS, span_matrix, token_spans
from tasks.models.sentiment import LORA_DIR
from tasks.training.entity_data import Mention
from tasks.training.news_docs import macro_f1
from tasks.training.train_news_sentiment import _entity_sets, entity_head_entry
from tasks.training.train_sentiment import (
    _seed_everything,
    hyperparameter_flags,
    warmup_linear,
)

DEFAULTS: dict[str, Any] = {"epochs": 4, "batch": 32, "lr": 1e-4, "head_lr": 1e-3,
                            "weight_decay": 0.01, "hidden": 256, "depth": 1, "dropout": 0.1,
                            "seed": 17, "contrast": 2000, "contrast_opposite": 0.5}


class States:
    """Each distinct training sentence's token states in the pass's `layers` (the head's
    input layer and the last; float16) and its tokens' character ranges, from the folder's
    merged encoder (fp32)."""

    def __init__(self, folder: Path, layers: list[int], progress: bool = True):
        from tasks.models.sentiment import LoraSentiment

        self.model = LoraSentiment(folder, "minilm-lora")
        self.encoder = self.model._encoder
        self.progress, self.layers = progress, layers
        self.rows: dict[str, tuple[Any, list]] = {}

    def add(self, texts: list[str]) -> None:
        import torch
        from tqdm.auto import tqdm

        todo = sorted({t for t in texts if t not in self.rows}, key=len)
        tok = self.model.tokenizer
        with torch.inference_mode():
            for k in tqdm(range(0, len(todo), 64), disable=not self.progress,
                          desc="token states"):
                batch = todo[k:k + 64]
                enc = tok(batch, truncation=True, max_length=self.model.max_length,
                          padding=True, return_offsets_mapping=True, return_tensors="pt")
                res = self.encoder(input_ids=enc["input_ids"],
                                   attention_mask=enc["attention_mask"],
                                   output_hidden_states=True)
                for i, text in enumerate(batch):
                    n = int(enc["attention_mask"][i].sum())
                    layers = torch.stack([res.hidden_states[j][i, :n] for j in self.layers])
                    self.rows[text] = (layers.half(), [tuple(o) for o in
                                                       enc["offset_mapping"][i, :n].tolist()])

    def batch(self, mentions: list[Mention]):
        """(inputs, last, marks, real) padded tensors for a list of mentions."""
        import torch

        width = max(self.rows[m.text][0].shape[1] for m in mentions)
        dim = self.rows[mentions[0].text][0].shape[2]
        inputs = torch.zeros(len(mentions), width, dim)
        last = torch.zeros(len(mentions), width, dim)
        marks = torch.zeros(len(mentions), width)
        real = torch.zeros(len(mentions), width)
        for i, m in enumerate(mentions):
            layers, offsets = self.rows[m.text]
            n = layers.shape[1]
            inputs[i, :n], last[i, :n] = layers[0].float(), layers[1].float()
            marks[i, :n] = torch.from_numpy(span_matrix(
                token_spans(offsets, ((m.start, m.end),)), n)[0])
            real[i, :n] = 1.0
        return inputs, last, marks, real


def _batches(gen, width: np.ndarray, size: int) -> list[np.ndarray]:
    """Shuffled batches of similar length (sorted within chunks of 50 batches), in shuffled
    order: less padding for the layer to run over."""
    order = gen.permutation(len(width))
    chunks = [order[k:k + 50 * size] for k in range(0, len(order), 50 * size)]
    out = [c[np.argsort(width[c], kind="stable")][j:j + size]
           for c in chunks for j in range(0, len(c), size)]
    return [out[i] for i in gen.permutation(len(out))]


def head_config(encoder_config, hidden: int, depth: int = 1) -> dict[str, Any]:
    """config.json `entity_head` features and head, for `depth` mention layers over
    `encoder_config`'s width."""
    n = encoder_config.num_hidden_layers
    return {"features": {"span_layers": [-1 - depth, -1], "describe":
                         f"the pass's layer-{n - depth} token states with a learned marker "
                         f"added to the mention's tokens, through {depth} transformer "
                         f"layer(s) (initialised from the encoder's last); the mention's mean "
                         f"and the sentence's mean of their output, and the mention's mean in "
                         f"the pass's layer {n}"},
            "head": {"kind": "mention_layer", "depth": depth,
                     "input_dim": encoder_config.hidden_size,
                     "heads": encoder_config.num_attention_heads,
                     "intermediate": encoder_config.intermediate_size, "hidden": hidden,
                     "eps": encoder_config.layer_norm_eps, "activation": "gelu"}}


def train(folder: Path, hp: dict[str, Any], out: Path, progress: bool = True,
          cache: Path | None = None) -> dict[str, Any]:
    """Train the head; `cache`: a file keeping the token states between tries on the same
    folder (written when missing; delete it when the folder's weights change)."""
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from tasks.models.entity_sentiment import build_entity_head

    _seed_everything(hp["seed"])
    states = States(folder, [-1 - hp["depth"], -1], progress)
    config = head_config(states.encoder.config, hp["hidden"], hp["depth"])
    assert config["features"]["span_layers"] == states.layers
    train_set, val = _entity_sets(hp)
    texts = [m.text for m in train_set] + [m.text for ms in val.values() for m in ms]
    if cache is not None and cache.is_file():
        kept = torch.load(cache)
        if kept["layers"] != states.layers:
            raise SystemExit(f"{cache} holds layers {kept['layers']}, not {states.layers}")
        states.rows = kept["rows"]
    states.add(texts)
    if cache is not None and not cache.is_file():
        torch.save({"layers": states.layers, "rows": states.rows}, cache)
    head = build_entity_head(config)
    head.init_from(states.encoder.encoder.layer)
    head.mlp[2].p = hp["dropout"]
    layer_params = list(head.blocks.parameters())
    opt = torch.optim.AdamW(
        [{"params": layer_params, "lr": hp["lr"]},
         {"params": [head.marker, *head.mlp.parameters()], "lr": hp["head_lr"]}],
        weight_decay=hp["weight_decay"])
    width = np.array([states.rows[m.text][0].shape[1] for m in train_set])
    per_epoch = (len(train_set) + hp["batch"] - 1) // hp["batch"]
    steps = per_epoch * hp["epochs"]
    scheduler = warmup_linear(opt, steps, max(1, steps // 20))
    gen = np.random.default_rng(hp["seed"])
    y_all = torch.tensor([m.label for m in train_set])

    def evaluate() -> dict[str, float]:
        head.eval()
        scores = {}
        with torch.no_grad():
            for name, ms in val.items():
                z = torch.cat([head(*states.batch(ms[k:k + 128]))
                               for k in range(0, len(ms), 128)])
                scores[f"{name}_macro_f1"] = round(macro_f1(
                    z.argmax(dim=1).numpy(), np.array([m.label for m in ms])), 4)
        head.train()
        scores["choice"] = round(float(np.mean(list(scores.values()))), 4)
        return scores

    history, best = [{"epoch": 0, **evaluate()}], None
    print(json.dumps(history[-1]), flush=True)
    started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="entity head", unit="step")
    head.train()
    for epoch in range(hp["epochs"]):
        for idx in _batches(gen, width, hp["batch"]):
            z = head(*states.batch([train_set[i] for i in idx]))
            loss = torch.nn.functional.cross_entropy(z, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            scheduler.step()
            bar.update(1)
        history.append({"epoch": epoch + 1, **evaluate(),
                        "seconds": round(time.perf_counter() - started)})
        print(json.dumps(history[-1]), flush=True)
        if best is None or history[-1]["choice"] > best["choice"]:
            best = history[-1]
            out.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()},
                      str(out / ENTITY_WEIGHTS))
            (out / "training.json").write_text(json.dumps(
                {"hyperparameters": hp, "history": history, "folder": str(folder),
                 "entity_head": config}, indent=2))
    bar.close()
    return {"best": best, "history": history}


def package(trained: Path, into: Path) -> dict[str, Any]:
    """Put the trained head into the model folder and fit its temperature there."""

    record = json.loads((trained / "training.json").read_text())
    shutil.copy(trained / ENTITY_WEIGHTS, into / ENTITY_WEIGHTS)
    best = max(record["history"][1:], key=lambda h: h["choice"])
    training = {"hyperparameters": record["hyperparameters"], "epoch_kept": best["epoch"],
                "history": record["history"],
                "command": f"python -m tasks.training.train_entity_head --folder "
                           f"{record['folder']} --out {trained} (hyperparameters above), "
                           f"then --package {trained}",
                "encoder": "frozen: the pass's layers as the model folder has them"}
    config = entity_head_entry(into, record["entity_head"], training,
                               record["hyperparameters"])
    return {k: config["entity_head"][k] for k in ("temperature", "validation_int8")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=LORA_DIR,
                        help="the sentiment model whose pass the head reads")
    parser.add_argument("--out", type=Path, help="folder for the trained head")
    parser.add_argument("--package", type=Path, help="a trained head folder to package")
    parser.add_argument("--into", type=Path, default=LORA_DIR)
    parser.add_argument("--states-cache", type=Path,
                        help="keep the training sentences' token states in this file")
    parser.add_argument("--no-progress", action="store_true")
    hyperparameter_flags(parser, DEFAULTS)
    args = parser.parse_args(argv)
    hp = {k: getattr(args, k) for k in DEFAULTS}
    if args.package:
        print(json.dumps(package(args.package, args.into), indent=2))
        return
    if not args.out:
        parser.error("--out or --package")
    print(json.dumps(train(args.folder, hp, args.out, not args.no_progress,
                                 args.states_cache)["best"]))


if __name__ == "__main__":
    main()
