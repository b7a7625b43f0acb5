"""Abstractive summaries from any Hugging Face seq2seq model (BART, PEGASUS, T5, ...).

transformers 5 has no summarization pipeline, so this is `AutoModelForSeq2SeqLM.generate`
with the model's own generation config, its `task_specific_params["summarization"]` (T5's
"summarize: " prefix, BART-CNN's beams and lengths) and the user's overrides on top.

News runs past these models' 512-1,024-token inputs. Rather than truncating, a document is
split on its sentences into chunks that fit (counted in the model's tokens,
`tasks.models.chunking`), the chunks are summarised (map), and the joined chunk summaries
are summarised again (reduce) until they fit in one input. The number of
first-level chunks is recorded per row.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from tasks.models.batching import length_batches
from tasks.models.chunking import TokenChunker
from tasks.models.registry import ModelError, ModelRef
from tasks.record import Document

GENERATION_KEYS = ("num_beams", "max_new_tokens", "min_new_tokens", "no_repeat_ngram_size",
                   "length_penalty")
# Generation settings a model may declare for summarisation in its config.
TASK_KEYS = ("num_beams", "max_length", "min_length", "no_repeat_ngram_size", "length_penalty",
             "early_stopping")
DTYPES = ("float32", "bfloat16")
FALLBACK_INPUT_TOKENS = 512  # when neither the tokenizer nor the config states a limit
MAX_REDUCE_ROUNDS = 8


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ModelError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def load_pretrained(auto_class: Any, ref: ModelRef, dtype: str, what: str) -> Any:
    """`auto_class` from the resolved folder: safetensors only, no remote code, and refused
    when weights it needs are not in the checkpoint (they would be random, e.g. a
    classification head on a model that was never fine-tuned for it)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report would repeat what is raised below
    try:
        model, info = auto_class.from_pretrained(
            str(ref.path), use_safetensors=True, trust_remote_code=False,
            dtype=torch_dtype(dtype), output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load {ref.name!r} as a {what} model: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(level)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelError(f"{ref.name!r} is not a trained {what} model: its checkpoint lacks "
                         f"{len(missing)} weight(s) ({', '.join(missing[:3])}, ...), which "
                         "would be random")
    return model.eval()


def input_limit(tokenizer: Any, config: Any) -> int:
    """Most input tokens the model takes: the tokenizer's limit and the position table's."""
    limits = []
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:
        limits.append(declared)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits) if limits else FALLBACK_INPUT_TOKENS


def n_special_tokens(tokenizer: Any) -> int:
    """Tokens the tokenizer adds around any input (e.g. <s> ... </s>)."""
    return len(tokenizer("", add_special_tokens=True)["input_ids"])


class Seq2SeqSummarizer:
    """Chunked map-reduce summaries with a seq2seq model; batches chunks across documents."""

    needs_embeddings = False

    def __init__(self, ref: ModelRef, *, dtype: str = "float32", batch_size: int = 8,
                 **overrides: Any):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        unknown = sorted(set(overrides) - set(GENERATION_KEYS))
        if unknown:
            raise ModelError(f"unknown generation option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(GENERATION_KEYS)}")
        self.ref = ref
        self.name = ref.name
        self.dtype = dtype
        self.batch_size = batch_size
        self.model = load_pretrained(AutoModelForSeq2SeqLM, ref, dtype, "seq2seq (summarisation)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(ref.path), trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the tokenizer of {ref.name!r}: "
                             f"{str(exc).strip().splitlines()[0]}") from None
        config = self.model.config
        task = dict((getattr(config, "task_specific_params", None) or {}).get("summarization")
                    or {})
        self.prefix = str(task.get("prefix") or "")
        self.generation = copy.deepcopy(self.model.generation_config)
        for key in TASK_KEYS:
            if key in task:
                setattr(self.generation, key, task[key])
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        for key, value in self.overrides.items():
            setattr(self.generation, key, value)
        # An override in new tokens replaces the model's total-length setting (and the model's
        # own copy is replaced too, or generate() warns that both are set).
        if "max_new_tokens" in self.overrides:
            self.generation.max_length = None
        if "min_new_tokens" in self.overrides:
            self.generation.min_length = None
        self.model.generation_config = self.generation
        self.limit = input_limit(self.tokenizer, config)
        self.chunker = TokenChunker(self.tokenizer, self.limit - n_special_tokens(self.tokenizer),
                                    self.prefix)
        budget = self.chunker.budget
        self.max_output = int(self.generation.max_new_tokens or self.generation.max_length or 20)
        if 2 * self.max_output + 2 > budget:
            raise ModelError(
                f"{ref.name}: summaries of up to {self.max_output} tokens cannot be combined "
                f"within its {self.limit}-token input; use --max-new-tokens {budget // 2 - 1} "
                "or less")
        self._torch = torch
        self._lock = threading.Lock()  # torch modules are not safe to call from several threads

    def generation_params(self) -> dict[str, Any]:
        g = self.generation
        keys = ("num_beams", "max_new_tokens", "max_length", "min_new_tokens", "min_length",
                "no_repeat_ngram_size", "length_penalty", "early_stopping", "do_sample")
        return {k: getattr(g, k, None) for k in keys}

    def provenance(self) -> dict[str, str]:
        params = {
            "kind": "seq2seq",
            "generation": self.generation_params(),
            "overrides": self.overrides,
            "prefix": self.prefix,
            "input_tokens": self.limit,
            "chunking": "sentences, map-reduce",
            "dtype": self.dtype,
        }
        return {"name": self.name, "revision": self.ref.revision,
                "params": json.dumps(params, sort_keys=True, default=str)}

    def generate(self, texts: list[str]) -> list[str]:
        """One summary per text (each already fits), batched by length, in input order."""
        torch = self._torch
        out = [""] * len(texts)
        inputs = [self.prefix + t for t in texts]
        with self._lock, torch.inference_mode():
            for idx in length_batches([len(t) for t in inputs], self.batch_size):
                enc = self.tokenizer([inputs[i] for i in idx], padding=True, truncation=False,
                                     return_tensors="pt")
                if enc["input_ids"].shape[1] > self.limit:  # chunking guarantees this
                    raise RuntimeError(f"chunk of {enc['input_ids'].shape[1]} tokens exceeds "
                                       f"the model's {self.limit}")
                ids = self.model.generate(**enc, generation_config=self.generation)
                for i, text in zip(idx, self.tokenizer.batch_decode(
                        ids, skip_special_tokens=True), strict=True):
                    out[i] = " ".join(text.split())
        return out

    def summarize(self, docs: list[Document]) -> list[Document]:
        # Round 0 (map) chunks the sentences; each later round (reduce) chunks the previous
        # round's summaries. All documents still in play share each round's batched generate.
        chunks = {id(d): self.chunker.pack(d.sentences or [d.text]) for d in docs}
        for doc in docs:
            doc.summary_chunks = len(chunks[id(doc)])
            doc.summary_sentence_ids = []
            doc.summary_method = "abstractive"
        active = list(docs)
        for _ in range(MAX_REDUCE_ROUNDS):
            flat = [c for d in active for c in chunks[id(d)]]
            summaries = self.generate(flat)
            start, still = 0, []
            for doc in active:
                n = len(chunks[id(doc)])
                parts = [s for s in summaries[start : start + n] if s]
                start += n
                if n == 1:
                    doc.summary = parts[0] if parts else None
                    continue
                packed = self.chunker.pack(parts)
                if not packed:  # the model returned nothing for every chunk
                    doc.summary = None
                    continue
                if len(packed) >= n:
                    raise RuntimeError(f"summaries of {n} chunks did not shrink to fewer chunks")
                chunks[id(doc)] = packed
                still.append(doc)
            active = still
            if not active:
                return docs
        raise RuntimeError(f"summaries still too long after {MAX_REDUCE_ROUNDS} reduce rounds")
