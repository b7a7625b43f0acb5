"""The run report: one self-contained HTML page that shows what a digest output holds.

People would rather look than read Parquet metadata. This module reads an output folder
(documents, rejects, run manifests), computes the figures, draws the plots with matplotlib
(Agg, no display) and renders a single HTML file: plots are embedded as base64 PNG, the CSS
is inline and nothing is loaded from the network, so the page opens offline and can be mailed
or archived as is. The page is a Jinja2 template (tasks/outputs/templates/report.html.j2) rendered
with autoescaping, so all text that comes from the data is escaped, and its URLs are shown as
text, never as links: document text is untrusted.

Each stage is a plain function (`load_output`, `compute_stats`, `render_plots`,
`render_html`, `write_report`) so it can be tested and reused without Prefect or the CLI.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from jinja2 import Environment

from tasks.io.atomic import atomic_write_bytes
from tasks.io.write import DOCUMENTS_DIR, REJECTS_DIR, RUNS_DIR
from tasks.outputs import templating

TOP_N = 12  # bars in the agency and dateline charts
EXTREMES = 5  # most negative and most positive documents in the table
# Columns the report reads; others (text aside) are ignored, missing optional ones tolerated.
_DOC_COLUMNS = ("doc_id", "source", "title", "published_date", "dateline", "agency",
                "summary", "sentiment", "sentiment_score")
# Columns other features may add to the schema; shown as value counts when present.
OPTIONAL_COLUMNS = ("language", "summary_method", "duplicate_of")
ENTITY_ROWS = 12  # entities in the "most mentioned" table
ENTITY_EXTREMES = 5  # most positive / negative entities (named in >= ENTITY_MIN_DOCS docs)
ENTITY_MIN_DOCS = 2
_LABEL_COLOURS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}
_ACCENT = "#2c6e9b"


class ReportError(RuntimeError):
    """The folder is not a readable digest output."""


@dataclass
class OutputData:
    """What the report needs from one output folder, read once."""

    root: Path
    documents: pa.Table  # _DOC_COLUMNS + text_words, summary_words (+ optional columns)
    rejects: pa.Table  # source, reason, detail
    manifests: list[dict[str, Any]]  # sorted by start time, oldest first
    unreadable: list[str] = field(default_factory=list)  # manifests that did not parse


def _parquet_files(folder: Path) -> list[Path]:
    # Hidden files are temporaries of a run in progress (tasks.io.write): not part of the data.
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def _word_counts(column: pa.ChunkedArray) -> pa.Array:
    return pc.list_value_length(pc.utf8_split_whitespace(column))


def _read_documents(files: list[Path]) -> pa.Table:
    """Only the columns the report shows, with word counts in place of the (large) text.

    Read a batch at a time: the text of a big output never sits in memory whole.
    """
    tables = []
    for path in files:
        try:
            shard = pq.ParquetFile(path)
            names = set(shard.schema_arrow.names)
            missing = [c for c in ("doc_id", "sentiment_score", "summary") if c not in names]
            if missing:
                raise ReportError(f"{path} is not a documents shard (no {', '.join(missing)})")
            wanted = [c for c in (*_DOC_COLUMNS, *OPTIONAL_COLUMNS, "entities") if c in names]
            has_text = "text" in names
            for batch in shard.iter_batches(batch_size=8192,
                                            columns=[*wanted, "text"] if has_text else wanted):
                table = pa.Table.from_batches([batch])
                text = (table.column("text") if has_text
                        else pa.nulls(table.num_rows, pa.string()))
                table = table.drop_columns(["text"]) if has_text else table
                table = table.append_column("text_words", _word_counts(text))
                tables.append(table.append_column("summary_words",
                                                  _word_counts(table.column("summary"))))
        except (OSError, pa.ArrowException) as exc:
            raise ReportError(f"cannot read {path}: {exc}") from None
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in _DOC_COLUMNS})
    return pa.concat_tables(tables, promote_options="default")


def _read_rejects(files: list[Path]) -> pa.Table:
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path, columns=["source", "reason", "detail"]))
        except (OSError, pa.ArrowException) as exc:
            raise ReportError(f"cannot read {path}: {exc}") from None
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in ("source", "reason", "detail")})
    return pa.concat_tables(tables, promote_options="default")


def _read_manifests(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    manifests, unreadable = [], []
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(manifest, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                unreadable.append(f"{path.name}: {exc}")
                continue
            manifests.append(manifest)
    manifests.sort(key=lambda m: (str(m.get("started_at", "")), str(m.get("run_id", ""))))
    return manifests, unreadable


def load_output(root: Path) -> OutputData:
    """Read a digest output folder; `ReportError` when it is missing or not one."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"not a folder: {root}")
    if not any((root / d).is_dir() for d in (DOCUMENTS_DIR, REJECTS_DIR, RUNS_DIR)):
        raise ReportError(f"not a textdigest output (no {DOCUMENTS_DIR}/, {REJECTS_DIR}/ or "
                          f"{RUNS_DIR}/ inside): {root}")
    manifests, unreadable = _read_manifests(root / RUNS_DIR)
    return OutputData(
        root=root,
        documents=_read_documents(_parquet_files(root / DOCUMENTS_DIR)),
        rejects=_read_rejects(_parquet_files(root / REJECTS_DIR)),
        manifests=manifests,
        unreadable=unreadable,
    )


# ---------------------------------------------------------------------------------- numbers


def _counts(values: list[Any]) -> list[tuple[str, int]]:
    """Value counts, most common first, ties by value; missing values left out."""
    counter = Counter(v for v in values if v is not None and v != "")
    return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist() if name in table.column_names else []


def _extremes(rows: list[dict[str, Any]], n: int) -> tuple[list[dict], list[dict]]:
    """The `n` lowest and `n` highest scored rows; never the same row in both lists."""
    scored = sorted((r for r in rows if r.get("sentiment_score") is not None),
                    key=lambda r: (r["sentiment_score"], r["doc_id"]))
    n_neg = min(n, (len(scored) + 1) // 2)
    n_pos = min(n, len(scored) - n_neg)
    return scored[:n_neg], scored[len(scored) - n_pos:][::-1]


def compute_stats(data: OutputData) -> dict[str, Any]:
    """Every number the page shows (JSON-serialisable, so tests and tools can check it)."""
    docs = data.documents
    n_docs = docs.num_rows
    scores = [s for s in _column(docs, "sentiment_score") if s is not None]
    text_words = _column(docs, "text_words")
    summary_words = _column(docs, "summary_words")
    ratios = [s / t for s, t in zip(summary_words, text_words, strict=True)
              if s is not None and t]
    dates = [d for d in _column(docs, "published_date") if d is not None]
    rows = docs.select([c for c in ("doc_id", "source", "title", "published_date", "agency",
                                    "dateline", "summary", "sentiment", "sentiment_score")
                        if c in docs.column_names]).to_pylist()
    negative, positive = _extremes(rows, EXTREMES)
    latest = data.manifests[-1] if data.manifests else None
    return {
        "documents": n_docs,
        "rejects": data.rejects.num_rows,
        "runs": len(data.manifests),
        "sentiment_labels": dict(_counts(_column(docs, "sentiment"))),
        "sentiment_score_mean": float(np.mean(scores)) if scores else None,
        "dated_documents": len(dates),
        "date_range": [min(dates).isoformat(), max(dates).isoformat()] if dates else None,
        "agencies": _counts(_column(docs, "agency")),
        "datelines": _counts(_column(docs, "dateline")),
        "without_agency": sum(not v for v in _column(docs, "agency")),
        "without_dateline": sum(not v for v in _column(docs, "dateline")),
        "summary_words_median": float(np.median([s for s in summary_words if s is not None]))
        if any(s is not None for s in summary_words) else None,
        "compression_median": float(np.median(ratios)) if ratios else None,
        "rejects_by_reason": dict(_counts(_column(data.rejects, "reason"))),
        "optional_columns": {c: _optional_summary(docs, c)
                             for c in OPTIONAL_COLUMNS if c in docs.column_names},
        "most_negative": negative,
        "most_positive": positive,
        "entities": _entity_stats(docs),
        "latest_run": latest,
        "unreadable_manifests": data.unreadable,
    }


def _entity_stats(docs: pa.Table) -> dict[str, list[dict[str, Any]]] | None:
    """Entities by the documents naming them (case-folded name): documents, mentions, mean
    score; the most mentioned, and the most positive and negative of those named in at least
    ENTITY_MIN_DOCS documents. None when the column is absent (older outputs)."""
    if "entities" not in docs.column_names:
        return None
    agg: dict[str, dict[str, Any]] = {}
    for row in _column(docs, "entities"):
        for e in row or ():
            a = agg.setdefault(e["name"].casefold(), {"name": e["name"], "type": e["type"],
                                                      "documents": 0, "mentions": 0,
                                                      "scores": []})
            a["documents"] += 1
            a["mentions"] += int(e["mentions"] or 0)
            a["scores"].append(float(e["score"]))
    rows = [{k: v for k, v in a.items() if k != "scores"}
            | {"mean_score": float(np.mean(a["scores"]))} for a in agg.values()]
    top = sorted(rows, key=lambda r: (-r["documents"], -r["mentions"], r["name"]))[:ENTITY_ROWS]
    known = [r for r in rows if r["documents"] >= ENTITY_MIN_DOCS]
    by_score = sorted(known, key=lambda r: (r["mean_score"], r["name"]))
    return {"top": top,
            "negative": [r for r in by_score if r["mean_score"] < 0][:ENTITY_EXTREMES],
            "positive": [r for r in reversed(by_score) if r["mean_score"] > 0][:ENTITY_EXTREMES]}


def _optional_summary(docs: pa.Table, name: str) -> list[tuple[str, int]]:
    values = _column(docs, name)
    if name == "duplicate_of":  # an id per row: how many rows are duplicates is what matters
        dupes = sum(v is not None and v != "" for v in values)
        return [("duplicates", dupes), ("originals", len(values) - dupes)]
    return _counts([str(v) if v is not None else None for v in values])[:TOP_N]


# ------------------------------------------------------------------------------------ plots


def _figure(width: float = 10.0, height: float = 3.6) -> Any:
    # Figure (not pyplot): no global state, no GUI backend, safe in worker threads.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _style(ax: Any, counts: str = "") -> None:
    """Light grid, no box; `counts` names the axis ("x"/"y") that counts documents."""
    from matplotlib.ticker import MaxNLocator

    ax.spines[["top", "right"]].set_visible(False)
    if counts:
        getattr(ax, f"{counts}axis").set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="both", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plot_sentiment(docs: pa.Table) -> Any | None:
    scores = np.array([s for s in _column(docs, "sentiment_score") if s is not None], float)
    if not len(scores):
        return None
    labels = _column(docs, "sentiment")
    fig = _figure()
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 2])
    names = list(_LABEL_COLOURS)
    counts = [sum(v == n for v in labels) for n in names]
    bars = ax1.bar(names, counts, color=[_LABEL_COLOURS[n] for n in names])
    ax1.bar_label(bars, padding=2)
    ax1.set_title("Documents per label")
    ax1.set_ylabel("documents")
    ax1.margins(y=0.15)
    ax2.hist(scores, bins=np.linspace(-1, 1, 41), color=_ACCENT, edgecolor="white")
    ax2.axvline(float(np.mean(scores)), color="#333333", linestyle="--", linewidth=1,
                label=f"mean {np.mean(scores):+.2f}")
    ax2.set_xlim(-1, 1)
    ax2.set_title("Sentiment score (p(positive) − p(negative))")
    ax2.set_xlabel("score")
    ax2.set_ylabel("documents")
    ax2.legend(frameon=False)
    for ax in (ax1, ax2):
        _style(ax, counts="y")
    ax1.grid(axis="x", visible=False)
    return fig


MAX_PERIODS = 45  # bars in the over-time chart

_PERIODS: tuple[tuple[str, Any], ...] = (
    ("day", lambda d: d.isoformat()),
    ("week", lambda d: f"{d.isocalendar().year}-W{d.isocalendar().week:02d}"),
    ("month", lambda d: f"{d:%Y-%m}"),
    ("quarter", lambda d: f"{d.year}-Q{(d.month - 1) // 3 + 1}"),
    ("year", lambda d: str(d.year)),
)


def _date_buckets(dates: list[dt.date]) -> tuple[str, Any]:
    """The finest period (day, week, month, quarter, year) giving at most MAX_PERIODS bars.

    Periods are shown side by side, empty ones left out: real feeds have long gaps (an old
    archive beside this week's news) that a continuous time axis would squash to slivers.
    """
    for unit, key in _PERIODS:
        if len({key(d) for d in dates}) <= MAX_PERIODS:
            return unit, key
    return _PERIODS[-1]


def _plot_over_time(docs: pa.Table) -> Any | None:
    pairs = [(d, s, lab) for d, s, lab in zip(_column(docs, "published_date"),
                                              _column(docs, "sentiment_score"),
                                              _column(docs, "sentiment"), strict=True)
             if d is not None and s is not None]
    if not pairs:
        return None
    unit, bucket = _date_buckets([p[0] for p in pairs])
    groups: dict[str, list[tuple[float, str]]] = {}
    for d, s, lab in sorted(pairs, key=lambda p: p[0]):
        groups.setdefault(bucket(d), []).append((s, lab))
    keys = list(groups)  # in date order
    x = np.arange(len(keys))
    fig = _figure(height=4.4)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    means = [float(np.mean([s for s, _ in groups[k]])) for k in keys]
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.plot(x, means, marker="o", color=_ACCENT, linewidth=1.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("mean score")
    ax.set_title(f"Mean sentiment score and documents per {unit} "
                 "(periods without documents left out)")
    bottom = np.zeros(len(keys))
    for name, colour in _LABEL_COLOURS.items():
        n = np.array([sum(lab == name for _, lab in groups[k]) for k in keys], float)
        ax_n.bar(x, n, bottom=bottom, color=colour, label=name, width=0.7)
        bottom += n
    ax_n.set_ylabel("documents")
    ax_n.set_ylim(0, bottom.max() * 1.35)
    ax_n.legend(frameon=False, ncols=3, loc="upper left", fontsize="small")
    step = max(1, len(keys) // 16)
    ax_n.set_xticks(x[::step], keys[::step], rotation=30 if len(keys) > 8 else 0,
                    ha="right" if len(keys) > 8 else "center", fontsize="small")
    _style(ax)
    _style(ax_n, counts="y")
    for a in (ax, ax_n):
        a.grid(axis="x", visible=False)
    return fig


def _barh(ax: Any, items: list[tuple[str, int]], title: str, colour: str = _ACCENT,
          slots: int = 0) -> None:
    """Largest bar on top; `slots` keeps bar thickness equal across side-by-side charts."""
    items = items[:TOP_N][::-1]
    slots = max(slots, len(items))
    y = np.arange(slots - len(items), slots)
    names = [_short(str(k), 28) for k, _ in items]
    bars = ax.barh(y, [v for _, v in items], color=colour, height=0.7)
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, slots - 0.4)
    ax.bar_label(bars, padding=2, fontsize="small")
    ax.set_title(title)
    ax.margins(x=0.12)
    _style(ax, counts="x")
    ax.grid(axis="y", visible=False)


def _plot_agency_dateline(stats: dict[str, Any]) -> Any | None:
    agencies, datelines = stats["agencies"], stats["datelines"]
    if not agencies and not datelines:
        return None
    rows = max(min(len(agencies), TOP_N), min(len(datelines), TOP_N), 3)
    fig = _figure(height=1.0 + 0.28 * rows)
    ax1, ax2 = fig.subplots(1, 2)
    for ax, items, what in ((ax1, agencies, "agency"), (ax2, datelines, "dateline")):
        if items:
            top = f" (top {TOP_N} of {len(items)})" if len(items) > TOP_N else ""
            _barh(ax, items, f"Documents per {what}{top}", slots=rows)
        else:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no {what} found", ha="center", va="center", color="#777777")
    return fig


def _plot_summaries(docs: pa.Table) -> Any | None:
    pairs = [(s, t) for s, t in zip(_column(docs, "summary_words"), _column(docs, "text_words"),
                                    strict=True) if s is not None and t]
    if not pairs:
        return None
    words = np.array([s for s, _ in pairs], float)
    ratios = np.array([s / t for s, t in pairs], float)
    fig = _figure()
    ax1, ax2 = fig.subplots(1, 2)
    ax1.hist(words, bins=min(30, max(5, len(words) // 2)), color=_ACCENT, edgecolor="white")
    ax1.axvline(float(np.median(words)), color="#333333", linestyle="--", linewidth=1,
                label=f"median {np.median(words):.0f}")
    ax1.set_title("Summary length")
    ax1.set_xlabel("words")
    ax1.set_ylabel("documents")
    ax2.hist(ratios, bins=np.linspace(0, 1, 41), color="#8e6bb8", edgecolor="white")
    ax2.axvline(float(np.median(ratios)), color="#333333", linestyle="--", linewidth=1,
                label=f"median {np.median(ratios):.2f}")
    ax2.set_xlim(0, 1)
    ax2.set_title("Compression (summary words / text words)")
    ax2.set_xlabel("ratio")
    for ax in (ax1, ax2):
        ax.legend(frameon=False)
        _style(ax, counts="y")
    return fig


def _plot_rejects(stats: dict[str, Any]) -> Any | None:
    items = list(stats["rejects_by_reason"].items())
    if not items:
        return None
    fig = _figure(height=1.0 + 0.28 * max(len(items), 3))
    ax = fig.subplots()
    _barh(ax, items, "Rejects by reason", colour="#d35400", slots=3)
    return fig


def _plot_throughput(manifests: list[dict[str, Any]]) -> Any | None:
    runs = [m for m in manifests if isinstance(m.get("docs_per_s"), int | float)]
    if not runs:
        return None
    fig = _figure(height=3.2)
    ax = fig.subplots()
    x = np.arange(len(runs))
    colours = [_ACCENT if m.get("status") == "completed" else "#c0392b" for m in runs]
    bars = ax.bar(x, [m["docs_per_s"] for m in runs], color=colours, width=0.6)
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize="small")
    pad = max(0, 8 - len(runs)) / 2  # a few runs: keep bars slim and centred
    ax.set_xlim(-0.5 - pad, len(runs) - 0.5 + pad)
    labels = [str(m.get("run_id", "?")) for m in runs]
    step = max(1, len(runs) // 12)
    ax.set_xticks(x[::step], labels[::step], rotation=20, ha="right", fontsize="small")
    ax.set_ylabel("documents / s")
    ax.set_title("Throughput per run (red: run did not complete)")
    ax.margins(y=0.15)
    _style(ax)
    ax.grid(axis="x", visible=False)
    return fig


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    png_base64: str | None  # None: nothing to draw, `note` says why
    note: str
    caption: str = ""


def render_plots(data: OutputData, stats: dict[str, Any]) -> list[Plot]:
    """Each plot as base64 PNG, or a note where the data has nothing to draw."""
    from matplotlib import rc_context

    specs = [
        ("sentiment", "Sentiment distribution", lambda: _plot_sentiment(data.documents),
         "No scored documents."),
        ("over-time", "Sentiment over published_date", lambda: _plot_over_time(data.documents),
         "No document has a published_date (no wire header date or date field)."),
        ("agency-dateline", "Documents per agency and dateline",
         lambda: _plot_agency_dateline(stats), "No document has an agency or a dateline."),
        ("summaries", "Summary length and compression", lambda: _plot_summaries(data.documents),
         "No summaries."),
        ("rejects", "Rejects by reason", lambda: _plot_rejects(stats), "No rejects."),
        ("throughput", "Throughput over runs", lambda: _plot_throughput(data.manifests),
         "No run manifest with a throughput."),
    ]
    n = stats["documents"]
    captions = {
        "over-time": f"{stats['dated_documents']:,} of {n:,} documents have a published_date.",
        "agency-dateline": f"Without an agency: {stats['without_agency']:,} of {n:,} "
                           f"documents; without a dateline: {stats['without_dateline']:,}.",
        "summaries": "Compression is the summary's share of the cleaned text, in words.",
    }
    plots = []
    # parse_math off: a `$` in an agency or dateline must not be read as TeX.
    with rc_context({"text.parse_math": False, "font.size": 10, "axes.titlesize": 11,
                     "axes.titleweight": "bold", "axes.edgecolor": "#888888"}):
        for key, title, draw, note in specs:
            fig = draw()
            if fig is None:
                plots.append(Plot(key, title, None, note))
            else:
                plots.append(Plot(key, title, _png(fig), "", captions.get(key, "")))
    return plots


# ------------------------------------------------------------------------------------- HTML
# The page is tasks/outputs/templates/report.html.j2 (autoescaped, URLs defanged:
# tasks.outputs.templating); the functions here only shape the numbers into what the
# template lays out.


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 10 \
            else f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@functools.cache
def _templates() -> Environment:
    return templating.environment(fmt=_fmt)


def _overview(stats: dict[str, Any]) -> list[tuple[Any, str]]:
    """The dataset's headline figures: (value, label) pairs."""
    mean = stats["sentiment_score_mean"]
    return [
        (stats["documents"], "documents in the dataset"),
        (stats["rejects"], "rejects in the dataset"),
        (stats["runs"], "runs"),
        (None if mean is None else f"{mean:+.2f}", "mean sentiment score"),
        (stats["summary_words_median"], "median summary words"),
        (stats["compression_median"], "median compression"),
    ]


def _latest_run(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The latest manifest as figures and table rows; None when there is no manifest."""
    if run is None:
        return None
    counts = run.get("counts") or {}
    facts = [["run id", run.get("run_id")], ["status", str(run.get("status", "?"))],
             ["started", run.get("started_at")], ["finished", run.get("finished_at")],
             ["textdigest", run.get("textdigest_version")]]
    if run.get("error"):
        facts.append(["error", run["error"]])
    config = run.get("config") or {}
    # nested by concern (flows/config.py); manifests of older versions hold the flat names
    for key, group, name in (("input", "input", "path"), ("output", "output", "path"),
                             ("summarizer", "models", "summarizer"),
                             ("sentiment_model", "models", "sentiment_model"),
                             ("batch_size", "runtime", "batch_size")):
        value = (config.get(group) or {}).get(name) if isinstance(config.get(group), dict) \
            else config.get(key)
        if value is not None:
            facts.append([f"config: {key}", value])
    return {
        "kpis": [(counts.get("read"), "documents read"), (counts.get("written"), "written"),
                 (counts.get("rejected"), "rejected"),
                 (counts.get("skipped_existing"), "skipped (already in output)"),
                 (run.get("docs_per_s"), "documents / s")],
        "facts": facts,
        "models": [[role, m.get("name"), m.get("revision")]
                   for role, m in (run.get("models") or {}).items() if isinstance(m, dict)],
        "timings": [[k, v] for k, v in (run.get("timings_s") or {}).items()],
        "reasons": [[k, v] for k, v in (run.get("rejects_by_reason") or {}).items()],
    }


def _doc_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a documents table: score and label, short title, date/place/agency, summary."""
    return [{"score": r.get("sentiment_score"), "label": str(r.get("sentiment") or ""),
             "title": _short(r.get("title") or "(untitled)", 120),
             "meta": [v for v in (r.get("published_date"), r.get("dateline"), r.get("agency"),
                                  r.get("source")) if v],
             "summary": r.get("summary") or ""}
            for r in rows]


def render_html(stats: dict[str, Any], plots: list[Plot], title: str) -> str:
    """The whole page as one string: inline CSS, embedded images, every data value escaped."""
    return _templates().get_template("report.html.j2").render(
        title=title,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        stats=stats,
        overview=_overview(stats),
        latest=_latest_run(stats["latest_run"]),
        plots=plots,
        most_negative=_doc_rows(stats["most_negative"]),
        most_positive=_doc_rows(stats["most_positive"]),
        entity_tables={k: [[r["name"], r["type"], r["documents"], r["mentions"], r["mean_score"]]
                           for r in v] for k, v in (stats["entities"] or {}).items()},
        entity_min_docs=ENTITY_MIN_DOCS,
    )


def write_report(root: Path, out: Path | None = None) -> Path:
    """Render the report of the output folder `root` to `out` (default root/report.html)."""
    root = Path(root)
    data = load_output(root)
    stats = compute_stats(data)
    plots = render_plots(data, stats)
    page = render_html(stats, plots, title=f"textdigest report: {root.resolve().name}")
    target = Path(out) if out is not None else root / "report.html"
    atomic_write_bytes(target, page.encode("utf-8"))
    target.chmod(0o644)  # a page to share: the temporary file was created owner-only
    return target
