"""Speed of the whole pipeline against the loop a user would write, on the same documents.

The documents are the 100 CNN/DailyMail dev articles, cycled to `--docs` (each copy with its
own id). Arms, each in its own child process (so each peak RSS is its own), one after another:

- naive: for each document, pysbd split, `SentenceTransformer.encode` of its sentences, a
  centroid summary (the 3 sentences closest to the mean embedding), and one call of the LoRA
  sentiment model on its sentences; all torch fp32.
- flow-torch / flow-onnx: the real `digest` Prefect flow (what `textdigest run` does: cleaning,
  language, MinHash, embeddings, extractive summary, sentiment, Parquet) from a JSONL file to
  a dataset folder, with the torch or onnx backend. Prefect's share is measured by running the
  same steps as plain functions (`tasks.pipeline.process_batch`, same batches) in the same child.
- flow-onnx-no-entities: flow-onnx with the entities step off (`--no-entities`): the table
  then states the entities step's cost.
- flow-onnx-pooled: flow-onnx with the sentiment model's document head off (the sentences'
  probabilities pooled, as before the head): the table then states the head's cost.

From the second copy on, every sentence carries a marker ("(k)" before its final stop), so
no sentence repeats across documents: the flow runs a sentence repeated within a batch once,
and would otherwise measure the copies. Rates count processing only (models are loaded
first, and timed apart); start-up is reported.
Quality is measured apart from the timing: ROUGE-2 of each arm's summaries of the 100
originals against the references (and LEAD-3's), SST-2 dev accuracy of each arm's sentiment
model (sign of p_pos - p_neg).

    python -m bench.speed                 # 2,000 documents
    python -m bench.speed --small         # 40 documents, flow-onnx vs naive (CI)
    python -m bench.speed --layout folder --docs 300   # headline-first .txt files, as BBC's
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
CNNDM_DEV = EVAL_DIR / "cnndm" / "dev.jsonl"
SST2_DEV = EVAL_DIR / "sst2" / "dev.tsv"
ARMS = ("naive", "flow-torch", "flow-onnx", "flow-onnx-no-entities", "flow-onnx-pooled")


def articles() -> list[dict[str, str]]:
    rows = [json.loads(line) for line in CNNDM_DEV.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [{"id": r["id"], "article": r["article"], "highlights": r["highlights"]} for r in rows]


def write_input(path: Path, n: int) -> Path:
    """`n` documents as JSONL: the articles cycled, copy k of article a has id a-k, and from
    the second copy on every sentence carries the marker "(k)" before its final stop."""
    rows = articles()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            r, k = rows[i % len(rows)], i // len(rows)
            text = r["article"] if k == 0 else " ".join(copy_sentences(r["article"], k))
            fh.write(json.dumps({"id": f"{r['id']}-{k}", "text": text}) + "\n")
    return path


def copy_sentences(article: str, k: int) -> list[str]:
    """The article's sentences, each marked "(k)" before its final stop from copy 1 on."""
    from tasks.steps.sentences import split_sentences

    sents = split_sentences(article)
    return sents if k == 0 else [f"{s[:-1]} ({k}){s[-1]}" if s[-1] in ".!?" else f"{s} ({k})"
                                 for s in sents]


def write_folder(path: Path, n: int) -> Path:
    """The same `n` documents as a folder of headline-first `.txt` files, as the BBC News
    corpus is laid out: a headline line (the article's first highlight, without its final
    stop), a blank line, then paragraphs of three sentences. File `<id>-<k>.txt`."""
    path.mkdir(parents=True, exist_ok=True)
    rows = articles()
    for i in range(n):
        r, k = rows[i % len(rows)], i // len(rows)
        sents = copy_sentences(r["article"], k)
        title = r["highlights"].strip().splitlines()[0].strip().rstrip(".")
        title += f" ({k})" if k else ""
        paras = [" ".join(sents[j:j + 3]) for j in range(0, len(sents), 3)]
        (path / f"{r['id']}-{k}.txt").write_text(title + "\n\n" + "\n\n".join(paras) + "\n",
                                                 encoding="utf-8")
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sst2_rows(limit: int | None) -> list[tuple[str, int]]:
    from tasks.training.train_head import read_tsv

    return [(t, int(label)) for t, label in read_tsv(SST2_DEV)][:limit]


def sst2_accuracy(sentence_probs, limit: int | None) -> float:
    """Share of SST-2 dev rows whose sign of p_pos - p_neg matches the label."""
    import numpy as np

    rows = sst2_rows(limit)
    probs = sentence_probs([t for t, _ in rows])
    pred = (probs[:, 2] - probs[:, 0] > 0).astype(int)
    return float((pred == np.array([y for _, y in rows])).mean())


def rouge2(summaries: dict[str, str]) -> float:
    """Mean ROUGE-2 F1 (x100) of the summaries of the originals (ids ending in -0) processed."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True)
    refs = {f"{r['id']}-0": r["highlights"].strip() for r in articles()}
    scores = [scorer.score(ref, summaries[i] or "")["rouge2"].fmeasure
              for i, ref in refs.items() if i in summaries]
    return 100 * sum(scores) / len(scores)


# --- the arms (each runs in a child process) --------------------------------------------------


def run_naive(input_path: Path, sst2_limit: int | None) -> dict[str, Any]:
    """The fifteen-line script: per document, split, encode, summarise, score."""
    import numpy as np
    import pysbd
    from sentence_transformers import SentenceTransformer

    from tasks.models.registry import resolve_encoder
    from tasks.models.sentiment import load_sentiment

    t0 = time.perf_counter()
    encoder = SentenceTransformer(str(resolve_encoder().path), device="cpu")
    sentiment = load_sentiment("minilm-lora")  # torch fp32, the same weights as the pipeline
    segmenter = pysbd.Segmenter(language="en", clean=False)
    load_s = time.perf_counter() - t0
    docs = [json.loads(line) for line in input_path.read_text(encoding="utf-8").splitlines()]

    summaries: dict[str, str] = {}
    n_sent = 0
    start = time.perf_counter()
    for doc in docs:
        sentences = [s.strip() for s in segmenter.segment(doc["text"]) if s.strip()]
        n_sent += len(sentences)
        emb = encoder.encode(sentences, normalize_embeddings=True, show_progress_bar=False)
        centroid = emb.mean(axis=0)
        top = sorted(np.argsort(-(emb @ centroid))[:3])
        summaries[doc["id"]] = " ".join(sentences[i] for i in top)
        probs = naive_probs(sentiment, sentences).mean(axis=0)
        _ = ("negative", "neutral", "positive")[int(np.argmax(probs))]
    wall = time.perf_counter() - start
    return {"docs": len(docs), "sentences": n_sent, "wall_s": wall, "load_s": load_s,
            "peak_rss_mib": peak_rss_mib(), "rouge2": rouge2(summaries),
            "sst2": sst2_accuracy(sentiment.sentence_probs, sst2_limit),
            "backend": "torch fp32, per document"}


def naive_probs(model, sentences: list[str]):
    """The user's call: the document's sentences in one padded torch batch (the pipeline runs
    each alone, for batch-invariant rows; the naive loop keeps the plain batched forward)."""
    import torch

    from tasks.models.encoder_pass import mean_pool

    with torch.inference_mode():
        enc = model.tokenizer(sentences, padding=True, truncation=True,
                              max_length=model.max_length, return_tensors="pt")
        hidden = model._encoder(input_ids=enc["input_ids"],
                                attention_mask=enc["attention_mask"]).last_hidden_state
        logits = model._head(mean_pool(hidden, enc["attention_mask"])).numpy()
    return model.calibrated(logits)


def run_flow(input_path: Path, backend: str, batch_size: int, sst2_limit: int | None,
             threads: int | None, plain: bool, entities: bool = True) -> dict[str, Any]:
    """The `digest` flow over the JSONL file, then (optionally) the same steps without Prefect."""
    import pyarrow.dataset as pads

    from flows.config import DigestConfig
    from flows.digest import digest

    work = Path(tempfile.mkdtemp(prefix="textdigest-speed-"))
    config = DigestConfig(input=input_path, output=work / "out", batch_size=batch_size,
                          show_progress=False, backend=backend, torch_threads=threads,
                          entities=entities)
    models = config.model_names()
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    models.load_encoder()  # load (and export, first time) before the clock starts
    sentiment = models.load_sentiment()
    models.load_summarizer()
    if entities:
        from tasks.models.entity_finder import load_finder

        load_finder()
        models.load_entity_model()
    load_s = time.perf_counter() - t0
    if plain:  # both timed passes start warm (ORT arenas, compiled regexes), not just the 2nd
        plain_steps(input_path, config, limit=config.runtime.batch_size)
    forget_rows(models, entities)

    t0 = time.perf_counter()
    manifest = digest(config)
    flow_total = time.perf_counter() - t0
    wall = manifest["timings_s"]["processing_wall"]
    table = pads.dataset(work / "out" / "documents", format="parquet").to_table(
        columns=["doc_id", "source", "title", "summary", "n_sentences"])
    rows = table.to_pylist()
    if input_path.is_dir():  # headline-first files: the id is the file name
        for r in rows:
            r["doc_id"] = Path(r["source"]).stem
    out = {"docs": manifest["counts"]["read"], "written": manifest["counts"]["written"],
           "sentences": sum(r["n_sentences"] or 0 for r in rows), "wall_s": wall,
           "titled": sum(bool(r["title"]) for r in rows),
           "load_s": load_s, "flow_total_s": flow_total, "timings_s": manifest["timings_s"],
           "rouge2": rouge2({r["doc_id"]: r["summary"] for r in rows}),
           "backend": json.loads(manifest["models"]["sentiment_model"]["params"]).get(
               "backend", "torch") + " " + json.loads(
               (manifest["models"]["encoder"] or {}).get("params") or "{}").get(
               "quantization", "fp32")}
    out["peak_rss_mib"] = peak_rss_mib()  # before the plain-steps rerun and the SST-2 pass
    if plain:
        forget_rows(models, entities)
        out["plain_steps_s"] = plain_steps(input_path, config)
    out["sst2"] = sst2_accuracy(sentiment.sentence_probs, sst2_limit)
    return out


def forget_rows(models, entities: bool = True) -> None:
    """Empty the models' sentence caches, so a timed pass computes every row (a warm-up or an
    earlier pass over the same documents would otherwise be measured as cache hits)."""
    from tasks.models.entity_finder import load_finder

    loaded = [models.load_encoder(), models.load_sentiment()]
    for model in loaded + ([models.load_entity_model()] if entities else []):
        cache = getattr(model, "cache", None)
        if cache is not None:
            cache.clear()
    if entities:
        load_finder().clear()


def plain_steps(input_path: Path, config, limit: int | None = None) -> float:
    """Seconds for the flow's steps as plain functions, one batch after another (no Prefect)."""
    from tasks.io import ingest
    from tasks.pipeline import Batch, process_batch

    settings = config.step_settings()  # the flow's steps (minhash included), from one list
    start = time.perf_counter()
    items = ingest.iter_items(input_path, config.ingest_options())
    for seq, raw in enumerate(ingest.batched(items, config.runtime.batch_size, limit,
                                             config.runtime.batch_chars)):
        process_batch(Batch(seq=seq, docs=[d for d in raw if hasattr(d, "raw_text")]),
                      settings)
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    before = load_avg()
    if args.arm.endswith("-pooled"):  # the measured arm without the document head
        import tasks.models.sentiment as sentiment

        sentiment.load_document_head = lambda folder, config: None
    if args.arm == "naive":
        result = run_naive(args.input, args.sst2_limit)
    else:
        result = run_flow(args.input, args.arm.split("-")[1], args.batch_size, args.sst2_limit,
                          args.threads, plain=not args.no_plain,
                          entities=not args.arm.endswith("-no-entities"))
    result.update(arm=args.arm, load_before=before, load_after=load_avg())
    args.result.write_text(json.dumps(result), encoding="utf-8")


# --- the parent: run the arms, print the table --------------------------------------------------


PACKAGES = ("textdigest", "numpy", "torch", "onnxruntime", "onnx", "transformers", "tokenizers",
            "sentence-transformers", "prefect", "pyarrow")
# CPU features that decide int8 speed: VNNI (AVX-512 or AVX) runs int8 dot products in one
# instruction; without it ONNX Runtime's int8 kernels fall back to slower AVX2 sequences.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def environment() -> list[str]:
    """Versions, CPU features and ONNX Runtime settings: what a speed figure depends on."""
    from importlib.metadata import PackageNotFoundError, version

    from tasks.models.onnx_backend import cache_root, session_settings

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
        isa = " ".join(f"{f}{'+' if f in flags else '-'}" for f in ISA_FLAGS)
    except (OSError, StopIteration):
        isa = "unknown (no /proc/cpuinfo)"
    ort = ", ".join(f"{k}={v}" for k, v in session_settings().items())
    return [f"packages: {', '.join(f'{p} {ver(p)}' for p in PACKAGES)}",
            f"cpu features: {isa}",
            f"onnxruntime session: {ort}; graphs cached in {cache_root()}"]


def machine() -> str:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def table(results: list[dict[str, Any]], lead3: float) -> str:
    naive = next((r for r in results if r["arm"] == "naive"), None)
    head = (f"{'arm':<22}{'backend':<26}{'docs':>6}{'docs/s':>9}{'sent/s':>9}{'x naive':>9}"
            f"{'peak RSS':>10}{'ROUGE-2':>9}{'SST-2':>8}{'load':>7}{'loadavg':>16}")
    lines = [head, "-" * len(head)]
    for r in results:
        dps, sps = r["docs"] / r["wall_s"], r["sentences"] / r["wall_s"]
        ratio = f"{dps / (naive['docs'] / naive['wall_s']):.1f}x" if naive else "-"
        lines.append(f"{r['arm']:<22}{r['backend']:<26}{r['docs']:>6}{dps:>9.1f}{sps:>9.0f}"
                     f"{ratio:>9}{r['peak_rss_mib']:>7.0f}MiB{r['rouge2']:>9.2f}"
                     f"{100 * r['sst2']:>7.1f}%{r['load_s']:>6.1f}s"
                     f"{r['load_before'].split()[0] + '→' + r['load_after'].split()[0]:>16}")
    by_arm = {r["arm"]: r for r in results}
    if {"flow-onnx", "flow-onnx-no-entities"} <= set(by_arm):
        on, off = (by_arm[a]["docs"] / by_arm[a]["wall_s"]
                   for a in ("flow-onnx", "flow-onnx-no-entities"))
        lines.append(f"entities step: {on:.1f} docs/s with it, {off:.1f} without "
                     f"({100 * (off / on - 1):+.0f}% time per document)")
    if {"flow-onnx", "flow-onnx-pooled"} <= set(by_arm):
        on, off = (by_arm[a]["docs"] / by_arm[a]["wall_s"]
                   for a in ("flow-onnx", "flow-onnx-pooled"))
        lines.append(f"document head: {on:.1f} docs/s with it, {off:.1f} without "
                     f"({100 * (off / on - 1):+.1f}% time per document)")
    if any(r.get("titled") for r in results):
        lines.append("titled documents (headline found): " + ", ".join(
            f"{r['arm']} {r['titled']} of {r['docs']}" for r in results if "titled" in r))
    lines.append(f"ROUGE-2 on the first {min(results[0]['docs'], 100)} articles; LEAD-3 on the "
                 f"same (pipeline cleaning): {lead3:.2f}")
    for r in results:
        if "plain_steps_s" in r:
            over = r["wall_s"] - r["plain_steps_s"]
            lines.append(f"{r['arm']}: flow processing {r['wall_s']:.1f}s vs the same steps as "
                         f"plain functions {r['plain_steps_s']:.1f}s (Prefect + overlap: "
                         f"{over:+.1f}s, {100 * over / r['wall_s']:+.1f}%); flow call in all "
                         f"{r['flow_total_s']:.1f}s (start-up + manifest)")
        if "timings_s" in r:
            t = r["timings_s"]
            steps = ", ".join(f"{k} {v:.1f}" for k, v in t.items()
                              if k not in ("load_models", "processing_wall"))
            lines.append(f"{r['arm']}: step seconds (summed over batches): {steps}")
    return "\n".join(lines)


def lead3_rouge2(n: int) -> float:
    from bench.summary_eval import load_articles

    docs, _ = load_articles(limit=min(n, 100))
    return rouge2({f"{d.doc_id}-0": " ".join(d.sentences[:3]) for d in docs})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents (articles cycled)")
    parser.add_argument("--small", action="store_true",
                        help="40 documents, naive vs flow-onnx, SST-2 on 100 rows (CI)")
    parser.add_argument("--arm", action="append", choices=ARMS, help="arms to run (repeatable)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="most documents per flow batch (the flow default)")
    parser.add_argument("--threads", type=int, default=None, help="torch / ORT threads")
    parser.add_argument("--no-plain", action="store_true",
                        help="skip the plain-steps rerun that measures Prefect's share")
    parser.add_argument("--layout", choices=("jsonl", "folder"), default="jsonl",
                        help="jsonl: one JSONL file, no titles; folder: headline-first .txt "
                             "files, as the BBC News corpus (flow arms only)")
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sst2-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.result:  # a child: one arm
        args.arm = args.arm[0]
        child(args)
        return []

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    n = 40 if args.small else args.docs
    arms = args.arm or (["naive", "flow-onnx"] if args.small else list(ARMS))
    if args.layout == "folder":
        arms = [a for a in (args.arm or ["flow-onnx", "flow-onnx-no-entities"])
                if a != "naive"]
    elif args.arm is None and not args.small:
        arms = [a for a in arms if a != "flow-onnx-pooled"]  # asked for by name
    sst2_limit = 100 if args.small else None
    print(f"machine: {machine()}; load average {load_avg()}", flush=True)
    print("\n".join(environment()), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="textdigest-speed-") as tmp:
        input_path = (write_folder(Path(tmp) / "docs", n) if args.layout == "folder"
                      else write_input(Path(tmp) / "docs.jsonl", n))
        for arm in arms:
            out = Path(tmp) / f"{arm}.json"
            cmd = [sys.executable, "-m", "bench.speed", "--arm", arm, "--input", str(input_path),
                   "--result", str(out), "--batch-size", str(args.batch_size)]
            cmd += ["--sst2-limit", str(sst2_limit)] if sst2_limit else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            cmd += ["--no-plain"] if args.no_plain or args.small else []
            print(f"running {arm} on {n} documents ...", flush=True)
            subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
            results.append(json.loads(out.read_text(encoding="utf-8")))
    print(table(results, lead3_rouge2(n)))
    return results


if __name__ == "__main__":
    main()
