"""The report and dataset card templates, without Prefect or model runs: tiny synthetic outputs.

The report is HTML: whatever the data holds must come out as text (escaped, URLs not links),
whatever the template says. The card is Markdown: nothing HTML-escaped, but a value cannot
break a table or a line, and the YAML header has what the Hub reads.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tasks.outputs import publish, templating
from tasks.outputs.report import Plot, compute_stats, load_output, render_html
from tasks.record import Document, Reject, documents_to_table, rejects_to_table

from .conftest import REPO

SCRIPT = "<script>alert(1)</script>"
EVIL = "https://evil.example/x"
TITLE = f"{SCRIPT} Markets rally \"up\" & 'away' {EVIL}"
SUMMARY = f"Shares rose. {SCRIPT} See {EVIL} for more."
AGENCY = "Ag|ency <b>\nWire"  # a pipe and a newline for the card's table
RUN = "20240102T030405-abcd"


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """One documents shard (two rows, one hostile), one rejects shard, one run manifest."""
    root = tmp_path_factory.mktemp("templates")
    for sub in ("documents", "rejects", "runs"):
        (root / sub).mkdir()
    docs = [
        Document(doc_id="d1", source="feed.jsonl:1", raw_text="x", title=TITLE,
                 text="Shares rose on Tuesday after strong results", summary=SUMMARY,
                 published_date=dt.date(2024, 1, 2), dateline=f"{SCRIPT} CITY", agency=AGENCY,
                 sentiment="positive", sentiment_score=0.7, sentiment_probs=(0.1, 0.1, 0.8)),
        Document(doc_id="d2", source="feed.jsonl:2", raw_text="x", title="Quiet day",
                 text="Nothing happened at all today", summary="Nothing happened.",
                 sentiment="negative", sentiment_score=-0.4, sentiment_probs=(0.6, 0.3, 0.1)),
    ]
    model = {"name": "extractive", "revision": "r1", "params": "{}"}
    prov = {"run_id": RUN, "textdigest_version": "0.1.0", "cleaner": "{}",
            "processed_at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "encoder": model,
            "summarizer": model, "sentiment_model": {**model, "name": "minilm-lora"}}
    pq.write_table(documents_to_table(docs, prov),
                   root / "documents" / f"part-{RUN}-00000.parquet")
    rejects = [Reject("empty.txt", "empty_text"), Reject("x.md", "odd|reason", SCRIPT)]
    pq.write_table(rejects_to_table(rejects, RUN, dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
                   root / "rejects" / f"part-{RUN}-00000.parquet")
    (root / "runs" / f"{RUN}.json").write_text(json.dumps({
        "run_id": RUN, "status": "failed", "started_at": "2024-01-02T03:04:05Z",
        "error": f"boom {SCRIPT} {EVIL}", "counts": {"read": 4, "written": 2, "rejected": 2},
        "docs_per_s": 1.5, "models": {"summarizer": {"name": SCRIPT, "revision": EVIL}},
        "timings_s": {"clean": 0.25}, "rejects_by_reason": {SCRIPT: 1}}))
    return root


class _Page(HTMLParser):
    """Tags, attribute values and the text of each `doc-title` / `summary` cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[str] = []
        self.cells: dict[str, list[str]] = {"doc-title": [], "summary": []}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += [v or "" for _, v in attrs]
        self._in = next((c for _, c in attrs if c in self.cells), None)

    def handle_data(self, data):
        if self._in:
            self.cells[self._in].append(data)
            self._in = None


def _report(output: Path) -> str:
    stats = compute_stats(load_output(output))
    plots = [Plot("sentiment", f"Sentiment {SCRIPT}", "iVBORw0KGgo=", "", f"caption {EVIL}"),
             Plot("rejects", "Rejects", None, f"note {SCRIPT}")]
    return render_html(stats, plots, title=f"report {SCRIPT}")


def test_report_shows_document_text_as_text_never_markup_or_links(output):
    page = _report(output)
    assert "<script" not in page.lower() and "<b>" not in page
    assert "https://" not in page and "href" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "https&#58;//evil.example/x" in page  # the URL as text
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tags.isdisjoint({"script", "a", "b", "link", "iframe"})
    # what a reader sees is the data, unchanged: escaped on the way in, read back as text
    assert TITLE in parsed.cells["doc-title"]
    assert SUMMARY in parsed.cells["summary"]
    assert not [v for v in parsed.attrs if "://" in v]  # no attribute holds a URL either
    # the template still lays out the figures the tests of the real report read
    assert '<div class="v">2</div><div class="l">documents in the dataset</div>' in page
    assert page.count("<img ") == 1 and "note &lt;script&gt;" in page


def test_templates_escape_html_only():
    env = templating.environment()
    assert env.autoescape("report.html.j2") is True
    assert env.autoescape("report.css") is True  # anything not known to be Markdown
    assert env.autoescape("dataset_card.md.j2") is False
    assert env.from_string("{{ v }}").render(v=f"{SCRIPT} {EVIL}") == (
        "&lt;script&gt;alert(1)&lt;/script&gt; https&#58;//evil.example/x")
    assert env.from_string("[{{ v }}]").render(v=None) == "[]"


def test_card_has_the_hub_header_and_markdown_neutralised_not_escaped(output):
    from huggingface_hub import DatasetCard

    card = publish.build_card("acme/news-digest", publish.local_shards(output))
    text = str(card)
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert {"language", "license", "size_categories", "task_categories", "task_ids",
            "pretty_name", "tags", "configs", "dataset_info"} <= set(front)
    assert [c["config_name"] for c in front["configs"]] == ["documents", "rejects"]
    assert [i["config_name"] for i in front["dataset_info"]] == ["documents", "rejects"]
    assert front["license"] == "other" and front["pretty_name"] == "News digest"
    assert DatasetCard(text).data.to_dict() == card.data.to_dict()  # the Hub reads it back

    body = card.text
    assert "# News digest" in body and "## Licence" in body
    assert "| Ag\\|ency <b> Wire | 1 |" in body  # one table cell: pipe escaped, newline gone
    assert "| `odd\\|reason` | 1 |" in body
    assert "&lt;" not in body and "&#" not in body  # Markdown is not HTML-escaped
    assert "read_parquet('hf://datasets/acme/news-digest/data/documents/*.parquet'" in body
    assert f"| `{RUN}` | 2 | 0.1.0 | extractive | minilm-lora |" in body
    # revision "r1" is not the installed minilm-lora: its metadata must not describe it
    assert "not the weights this textdigest installs" in body
    assert "PhraseBank" not in body and "data under these terms" not in body


HUB_MODEL = {"name": "ProsusAI/finbert", "revision": "4556d13015211d73dccd3fdd39d39232506f3e43",
             "params": "{}"}


@pytest.fixture(scope="module")
def model_runs(tmp_path_factory) -> dict[str, tuple[publish.Shard, Path | None]]:
    """One run per sentiment model (both built-ins, one Hub model), each row's provenance as
    that model writes it: the card must describe the models from their own metadata. The
    minilm-lora run also names the entity model (the `entities` column), as default runs do."""
    from tasks.models.entity_sentiment import ENTITY_DIR, ENTITY_MODEL, EntitySentiment
    from tasks.models.sentiment import (
        BUILTIN_DIRS,
        HEAD_NAME,
        LORA_NAME,
        EmbeddingHeadSentiment,
        LoraSentiment,
    )

    root = tmp_path_factory.mktemp("models")
    (root / "documents").mkdir()
    provenance = {
        LORA_NAME: LoraSentiment(BUILTIN_DIRS[LORA_NAME], LORA_NAME, load_weights=False),
        HEAD_NAME: EmbeddingHeadSentiment(BUILTIN_DIRS[HEAD_NAME], HEAD_NAME),
    }
    provenance = {name: m.provenance() for name, m in provenance.items()}
    provenance[HUB_MODEL["name"]] = HUB_MODEL
    entity = EntitySentiment(load_weights=False).provenance()
    model = {"name": "extractive", "revision": "r1", "params": "{}"}
    runs = {}
    for i, (name, prov) in enumerate(provenance.items()):
        run = runs[name] = f"20240102T03040{i}-run{i}"
        doc = Document(doc_id=f"m{i}", source="feed.jsonl:1", raw_text="x", title="Up",
                       text="Shares rose.", summary="Shares rose.", sentiment="positive",
                       sentiment_score=0.7, sentiment_probs=(0.1, 0.1, 0.8))
        pq.write_table(documents_to_table([doc], {
            "run_id": run, "textdigest_version": "0.1.0", "cleaner": "{}",
            "processed_at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "encoder": model,
            "summarizer": model, "sentiment_model": prov,
            "entity_model": entity if name == LORA_NAME else None}),
            root / "documents" / f"part-{run}-00000.parquet")
    shards = {shard.run_id: shard for shard in publish.local_shards(root)}
    out = {name: (shards[run], BUILTIN_DIRS.get(name)) for name, run in runs.items()}
    return out | {ENTITY_MODEL: (shards[runs[LORA_NAME]], ENTITY_DIR)}


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _model_entry(section: str, name: str) -> str:
    """A model's bullet of the Sentiment models section, with its nested lines."""
    return section.split(f"\n- `{name}`", 1)[1].split("\n- `", 1)[0] + "\n"


def test_card_states_each_sentiment_models_data_licences_and_rule_from_its_metadata(model_runs):
    """Every training set, licence and label rule of a built-in model that labelled rows is in
    the card as the model's config.json states it; a Hub model is named with its revision."""
    from huggingface_hub import DatasetCard

    card = publish.build_card("acme/x", [shard for shard, _ in model_runs.values()])
    assert DatasetCard(str(card)).data.to_dict() == card.data.to_dict()  # a valid Hub header
    assert yaml.safe_load(str(card).split("---\n")[1])["configs"]
    models = _section(card.text, "Sentiment models")
    licence_section = _section(card.text, "Licence")
    for name, (_, folder) in model_runs.items():
        entry = _model_entry(models, name)
        if folder is None:  # not built in: what is known, and where its data are described
            assert HUB_MODEL["revision"] in entry and "its own model card" in entry
            assert f"https://huggingface.co/{name}" in entry
            assert "arg-max" in entry  # HFSentiment labels by set_sentiment's arg-max
            continue
        meta = json.loads((folder / "config.json").read_text())
        data = [d for d in meta["data"].values() if isinstance(d, dict) and "licence" in d]
        assert data, f"{name}: its metadata lists no training data with a licence"
        for d in data:
            dataset = d["licence"].split(":")[0]  # "<dataset>: <terms>"
            assert dataset in entry, f"{name}: training set {dataset} not in the card"
            assert f"  - {d['licence']}\n" in entry, f"{name}: the licence of {dataset}"
            assert f"- {d['licence']}\n" in licence_section
        if meta.get("neutral_band") is not None:
            assert f"{meta['label_rule']} (neutral_band = {meta['neutral_band']})" in entry
        elif "label_rule" in meta:  # minilm-entity: arg-max, its rule says why
            assert meta["label_rule"] in entry and "neutral_band =" not in entry
        else:  # EmbeddingHeadSentiment: set_sentiment without a band takes the arg-max
            assert "arg-max" in entry and "neutral_band" not in entry
    assert "arg-max of the probabilities" not in card.text  # the old, wrong column note


def test_sentiment_column_gives_the_label_rule_of_the_model_that_ran(model_runs):
    """With one model, the `sentiment` column note carries its band, read from its metadata."""
    from tasks.models.sentiment import LORA_NAME

    shard, folder = model_runs[LORA_NAME]
    meta = json.loads((folder / "config.json").read_text())
    card = publish.build_card("acme/x", [shard])
    note = re.search(r"^\| `sentiment` \| string \| (.*) \|$", card.text, re.M)[1]
    band = re.search(r"neutral_band = ([-\d.]+)", note)
    assert band and float(band[1]) == meta["neutral_band"], note
    assert meta["label_rule"] in note


def test_card_states_the_entity_head_a_models_pass_serves_from_its_metadata(
        tmp_path, monkeypatch):
    """Where the sentiment model's own pass scores the `entities` column (an entity head in
    its folder), the card's entry for that column carries the head's rule and the licences
    of the data it was trained on (`entity_head.data.sets`), from the same config.json."""
    import shutil

    from tasks.models import sentiment
    from tasks.models.entity_sentiment import PassEntitySentiment

    folder = tmp_path / "sentiment-lora"
    shutil.copytree(sentiment.LORA_DIR, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    sets = [k for k, v in config["data"].items() if isinstance(v, dict) and "licence" in v][:1]
    config["entity_head"] = {"features": {"span_layers": [-2, -1]},
                             "head": {"input_dim": 1152, "hidden": 8},
                             "temperature": 1.0, "neutral_band": None,
                             "label_rule": "arg-max of the test head's probabilities",
                             "data": {"sets": ["newsmtsc", *sets],  # its own, the model's
                                      "newsmtsc": {"licence": "NewsMTSC (test): MIT"}}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "entity_head.safetensors").write_bytes(b"test head")
    monkeypatch.setitem(sentiment.BUILTIN_DIRS, sentiment.LORA_NAME, folder)
    model = sentiment.LoraSentiment(folder, sentiment.LORA_NAME, load_weights=False)
    head = PassEntitySentiment.__new__(PassEntitySentiment)  # its provenance, no weights
    head.pass_model, head.config, head.name = model, config["entity_head"], model.name
    head.temperature, head.band = 1.0, None
    root = tmp_path / "out"
    (root / "documents").mkdir(parents=True)
    model_ref = {"name": "extractive", "revision": "r1", "params": "{}"}
    pq.write_table(documents_to_table([Document(
        doc_id="e1", source="feed.jsonl:1", raw_text="x", title="Up", text="Shares rose.",
        summary="Shares rose.", sentiment="positive", sentiment_score=0.7,
        sentiment_probs=(0.1, 0.1, 0.8))], {
        "run_id": RUN, "textdigest_version": "0.1.0", "cleaner": "{}",
        "processed_at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "encoder": model_ref,
        "summarizer": model_ref, "sentiment_model": model.provenance(),
        "entity_model": head.provenance()}), root / "documents" / f"part-{RUN}-00000.parquet")
    card = publish.build_card("acme/x", publish.local_shards(root))
    models = _section(card.text, "Sentiment models")
    entity = models.split("(the `entities` column", 1)[1].split("\n- `", 1)[0]
    assert "arg-max of the test head's probabilities" in entity
    assert "  - NewsMTSC (test): MIT\n" in entity
    for key in sets:
        assert f"  - {config['data'][key]['licence']}\n" in entity
    document = models.split("(the `sentiment` column", 1)[1].split("\n- `", 1)[0]
    assert "NewsMTSC" not in document  # the document head was not trained on it


def test_templates_ship_as_package_data():
    shipped = {p.name for p in (importlib.resources.files("tasks.outputs") / "templates").iterdir()}
    assert {"report.html.j2", "report.css", "dataset_card.md.j2"} <= shipped
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "templates/*" in config["tool"]["setuptools"]["package-data"]["tasks.outputs"]
