"""The document head: a news document's label from what the encoder pass already computed.

Pooling sentence probabilities averages a story's strong news into weak scores, and the tone
of a sentence is not the news it reports (a death, a trial, a lost bid are bad news in calm
words). The head reads, per document, the outputs the sentiment model's one pass gives for
each unit (its title and the sentences of the lead): the title's, the first sentence's and
the body's mean sentence vector, and the probabilities of the title, the first sentence,
the body's mean, its polar-weighted mean and its strongest positive and negative sentence;
and, from the units' text, which way a results table's figures went
(`tasks.models.reported_figures`: the encoder cannot compare two numbers).
It was trained on whole news documents labelled by the team
(`tasks/training/news_docs/`) together with the sentence sets, so single sentences keep
their labels (`tasks.training.train_document_head`).

Each document is computed alone, in float64 up to the head, so its row never depends on
the batch it came in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tasks.models.registry import ModelError, file_digest
from tasks.models.reported_figures import FEATURE_NAMES, figure_features

WEIGHTS = "doc_head.safetensors"
# The feature layout: a trained head records it and is refused by code that builds another.
FEATURES = "title-lead-mean-vectors+probs+figures/v2"
# Layouts a trained head may record, and whether they end with the figure features: a head
# trained before them (v1) still loads, and benches compare it with a newer one.
LAYOUTS = {"title-lead-mean-vectors+probs/v1": False, FEATURES: True}


def document_features(probs, vectors, titled: bool, texts: list[str], figures: bool = True):
    """One feature row (torch) for a document from its units' calibrated probabilities
    (n, 3), sentence vectors (n, d) and texts, title first when `titled`; absent parts are
    zeros, with flags. Torch so that training backpropagates through it into the encoder;
    serving calls it in float64, one document at a time."""
    import torch

    zero_v, zero_p = vectors.new_zeros(vectors.shape[1]), probs.new_zeros(3)
    title_v, title_p = (vectors[0], probs[0]) if titled else (zero_v, zero_p)
    body_v, body_p = (vectors[1:], probs[1:]) if titled else (vectors, probs)
    n_body = len(body_p)
    if n_body:
        weights = 1.0 - body_p[:, 1] + 1e-6  # polar-weighted: opinionated sentences count
        polar_p = (weights[:, None] * body_p).sum(dim=0) / weights.sum()
        parts = [body_v[0], body_v.mean(dim=0), body_p[0], body_p.mean(dim=0), polar_p,
                 torch.stack([body_p[:, 2].max(), body_p[:, 0].max()])]
    else:
        parts = [zero_v, zero_v, zero_p, zero_p, zero_p, probs.new_zeros(2)]
    flags = probs.new_tensor([float(titled), float(n_body > 0), min(n_body, 15) / 15.0])
    lead_v, mean_v, lead_p, mean_p, polar_p, strongest = parts
    parts = [title_v, lead_v, mean_v, title_p, lead_p, mean_p, polar_p, strongest, flags]
    if figures:
        parts.append(probs.new_tensor(figure_features(texts[1:] if titled else texts)))
    return torch.cat(parts)


def feature_dim(vector_dim: int, figures: bool = True) -> int:
    return 3 * vector_dim + 17 + len(FEATURE_NAMES) * figures


def build_module(arch: dict[str, Any]):
    """The torch module an architecture entry describes; shared by training and loading."""
    import torch

    dim, hidden, n_out = int(arch["input_dim"]), int(arch.get("hidden", 0)), 3
    if hidden:
        return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(),
                                   torch.nn.Linear(hidden, n_out))
    return torch.nn.Sequential(torch.nn.Linear(dim, n_out))


class DocumentHead:
    """The trained head in a sentiment model folder: `config.json["document_head"]` and
    `doc_head.safetensors`."""

    def __init__(self, folder: Path, config: dict[str, Any]):
        import torch
        from safetensors.torch import load_file

        entry = config.get("document_head")
        weights = folder / WEIGHTS
        if not entry or not weights.is_file():
            raise ModelError(f"{folder} has no document head ({WEIGHTS} and "
                             "config.json document_head)")
        if entry["features"] not in LAYOUTS:
            raise ModelError(f"document head features {entry['features']!r} are not one of "
                             f"this code's ({', '.join(LAYOUTS)})")
        self.figures = LAYOUTS[entry["features"]]
        self.entry = entry
        # Two thresholds on one score: documents of two or more units (fitted on the team's
        # news documents) and one-unit texts, a headline or a sentence (fitted on the
        # sentence sets' calibration slices), whose scores run stronger.
        self.band = entry.get("neutral_band")
        self.single_unit_band = entry.get("single_unit_band", self.band)
        self.digest = file_digest(weights)
        self.mean = np.asarray(entry["standardize"]["mean"], dtype=np.float64)
        self.scale = np.asarray(entry["standardize"]["scale"], dtype=np.float64)
        self._module = build_module(entry["architecture"]).double()
        self._module.load_state_dict({k: v.double() for k, v in
                                      load_file(str(weights)).items()})
        self._module.eval()
        self._torch = torch

    def band_for(self, n_units: int) -> float | None:
        """The neutral band that labels a document of `n_units` units (title included)."""
        return self.single_unit_band if n_units == 1 else self.band

    def params(self) -> dict[str, Any]:
        return {"features": self.entry["features"], "architecture": self.entry["architecture"],
                "neutral_band": self.band, "single_unit_band": self.single_unit_band}

    def probs(self, probs: np.ndarray, vectors: np.ndarray, titled: bool,
              texts: list[str]) -> np.ndarray:
        """(neg, neu, pos) of one document from its units' calibrated probabilities,
        vectors and texts (title first when `titled`)."""
        torch = self._torch
        if titled and len(probs) == 1:
            # A headline with no body is a one-sentence text: read it as the head learned
            # single sentences (headlines among them), not as a title missing its story.
            titled = False
        with torch.no_grad():
            x = document_features(torch.from_numpy(np.asarray(probs, dtype=np.float64)),
                                  torch.from_numpy(np.asarray(vectors, dtype=np.float64)),
                                  titled, texts, self.figures).numpy()
            x = (x - self.mean) / self.scale
            z = self._module(torch.from_numpy(x[None, :]))[0]
            return torch.softmax(z, dim=-1).numpy()


def load_document_head(folder: Path, config: dict[str, Any]) -> DocumentHead | None:
    """The folder's document head (`config` is its parsed config.json), or None when the
    model has none (older weights)."""
    if "document_head" not in config:
        return None
    return DocumentHead(folder, config)
