"""Tiny Hugging Face models built on the fly, so the Hub-model path is tested with no Hub.

Random weights, but real architectures, real tokenizers (trained here on news text) and real
`save_pretrained` folders with safetensors: exactly what a user's model folder looks like.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_TOKENS = 128  # the input limit of every tiny model: long documents must be chunked


def news_articles(path: Path) -> list[str]:
    """The article texts of a JSONL file: its `text` field (tests/data/fixtures/articles.jsonl)
    or its `article` field (CNN/DailyMail layout, as the benchmarks read from ../shared)."""
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [row["text"] if "text" in row else row["article"] for row in rows]


def news_text(path: Path, words: int) -> str:
    """Concatenated articles of the JSONL file `path`, exactly `words` words (ending in a
    full stop); the articles are taken again from the first when the file holds fewer words."""
    articles = [a for a in news_articles(path) if a.split()]
    if not articles:
        raise ValueError(f"no article text in {path}")
    out: list[str] = []
    n = 0
    while n < words:
        article = articles[len(out) % len(articles)]
        out.append(article)
        n += len(article.split())
    text = " ".join(" ".join(out).split()[:words])
    return text if text.endswith(".") else text + "."


def train_tokenizer(corpus: list[str], template: str, vocab_size: int = 4000):
    """A byte-level BPE tokenizer wrapped for transformers; `template` like '<s> $A </s>'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    used = [t for t in template.split() if t in specials]
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, tok.token_to_id(t)) for t in dict.fromkeys(used)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
        unk_token="<unk>", mask_token="<mask>", model_max_length=MAX_TOKENS)


def _ids(tokenizer) -> dict[str, int]:
    return {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def build_bart(folder: Path, tokenizer) -> Path:
    """A BART (tokenizer template '<s> $A </s>') with a 128-position input."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=MAX_TOKENS,
        decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=None,
        **_ids(tokenizer))
    model = BartForConditionalGeneration(config)
    model.generation_config.max_length = 24
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_t5(folder: Path, tokenizer) -> Path:
    """A T5 (tokenizer template '$A </s>') whose config declares the summarisation prefix and
    generation settings, as t5-small does."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1,
        num_decoder_layers=1, num_heads=2, decoder_start_token_id=tokenizer.pad_token_id,
        task_specific_params={"summarization": {"prefix": "summarize: ", "num_beams": 2,
                                                "max_length": 20, "min_length": 3}},
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # random weights favoured <pad>, which decodes to nothing
        model.shared.weight[tokenizer.pad_token_id].zero_()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_classifier(folder: Path, tokenizer, id2label: dict[int, str], seed: int = 0) -> Path:
    """A tiny DistilBERT sequence classifier with the given labels."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
        max_position_embeddings=MAX_TOKENS, pad_token_id=tokenizer.pad_token_id,
        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = DistilBertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
