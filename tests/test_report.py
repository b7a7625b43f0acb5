"""The run report and the Prefect artifacts, over real digest outputs (real flow, models)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.config import DigestConfig
from tasks.outputs.report import ReportError, compute_stats, load_output, write_report
from tasks.record import Document, documents_to_table

from .conftest import REPO
from .sample_input import HOSTILE, URL, build_input

PLOTS = 6  # sentiment, over time, agency/dateline, summaries, rejects, throughput
EXE = Path(sys.executable).with_name("textdigest")


@pytest.fixture(scope="module")
def digest_output(prefect_harness, tmp_path_factory):
    """Two runs into one output (the second skips everything), each writing the report."""
    from flows.digest import digest

    root = tmp_path_factory.mktemp("report")
    expected = build_input(root / "in")
    config = DigestConfig(input=root / "in", output=root / "data", show_progress=False,
                          report=True)
    runs = [digest(config), digest(config)]
    return root / "data", runs, expected


def _html(out: Path) -> str:
    return (out / "report.html").read_text(encoding="utf-8")


def _kpi(html: str, label: str) -> str:
    m = re.search(rf'<div class="v">([^<]*)</div><div class="l">{re.escape(label)}</div>', html)
    assert m, f"no figure labelled {label!r}"
    return m.group(1)


def test_flow_writes_a_report_with_every_plot_and_the_manifest_numbers(digest_output):
    out, runs, expected = digest_output
    assert [r["report_path"] for r in runs] == [str(out / "report.html")] * 2
    html = _html(out)
    assert html.count("<img ") == PLOTS
    assert html.count('src="data:image/png;base64,') == PLOTS
    latest = json.loads(Path(runs[-1]["manifest_path"]).read_text())
    for key, label in (("read", "documents read"), ("written", "written"),
                       ("rejected", "rejected"), ("skipped_existing", "skipped (already in "
                                                                      "output)")):
        assert _kpi(html, label) == f"{latest['counts'][key]:,}"
    assert latest["counts"]["skipped_existing"] == expected["documents"] + expected["rejects"]
    assert latest["run_id"] in html
    # dataset totals: what pyarrow reads, not what the manifests claim
    assert _kpi(html, "documents in the dataset") == str(pq.read_table(out / "documents")
                                                         .num_rows)
    assert _kpi(html, "rejects in the dataset") == str(pq.read_table(out / "rejects").num_rows)
    assert _kpi(html, "runs") == "2"


def test_report_numbers_match_the_data(digest_output):
    out, runs, expected = digest_output
    stats = compute_stats(load_output(out))
    docs = pq.read_table(out / "documents").to_pylist()
    assert stats["documents"] == len(docs) == expected["documents"]
    assert stats["rejects"] == expected["rejects"]
    assert stats["rejects_by_reason"] == runs[0]["rejects_by_reason"]
    labels = [d["sentiment"] for d in docs]
    assert stats["sentiment_labels"] == {k: labels.count(k) for k in set(labels)}
    dates = sorted(d["published_date"] for d in docs if d["published_date"])
    assert stats["date_range"] == [dates[0].isoformat(), dates[-1].isoformat()]
    assert dates[-1] == dt.date(2022, 2, 23)  # the seed's wire header
    assert ("TASS", 1) in stats["agencies"]
    scores = sorted(d["sentiment_score"] for d in docs)
    assert [r["sentiment_score"] for r in stats["most_negative"]] == scores[:3]
    assert [r["sentiment_score"] for r in stats["most_positive"]] == scores[3:][::-1]
    for row in stats["most_negative"] + stats["most_positive"]:
        assert row["summary"]


def test_report_loads_nothing_from_the_network(digest_output):
    out, _, _ = digest_output
    html = _html(out)
    for needle in ("http://", "https://", "//cdn", "<script", "<link", "@import", "url("):
        assert needle not in html.lower()
    assert not re.search(r'src="(?!data:image/png;base64,)', html)
    # the title's URL is shown as text, not as a link
    assert URL.replace("https://", "https&#58;//") in html


def test_text_from_the_data_is_escaped(tmp_path):
    """Hostile values straight into the Parquet columns (the cleaner would strip them).

    The agency's `$\\frac{$` is broken TeX: matplotlib raises on it unless math parsing is off.
    """
    doc = Document(doc_id="h1", source=f"{HOSTILE}.txt", raw_text="x", title=HOSTILE,
                   text=f"{HOSTILE} body", published_date=dt.date(2024, 1, 2),
                   dateline=f"{HOSTILE} $x^2$", agency="A $\\frac{$ <b>", sentences=["b"],
                   summary=f"{HOSTILE} & {URL}", sentiment="negative", sentiment_score=-0.5,
                   sentiment_probs=(0.6, 0.3, 0.1))
    prov = {"run_id": "r", "textdigest_version": "0", "processed_at": dt.datetime.now(dt.UTC),
            "cleaner": "{}", **{k: {"name": "m", "revision": "r", "params": "{}"}
                                for k in ("encoder", "summarizer", "sentiment_model")}}
    (tmp_path / "documents").mkdir()
    pq.write_table(documents_to_table([doc], prov), tmp_path / "documents" / "part-0.parquet")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert HOSTILE not in html and "<b>" not in html and "https://" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # drawn: sentiment, over time, agency/dateline, summaries; notes: no rejects, no runs
    assert html.count("<img ") == 4
    assert "No rejects." in html and "No run manifest" in html


def test_an_output_without_documents_gets_notes_instead_of_plots(prefect_harness, tmp_path):
    from flows.digest import digest

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.txt").write_text(" ")
    summary = digest(DigestConfig(input=tmp_path / "in", output=tmp_path / "data",
                                  show_progress=False, report=True))
    assert summary["counts"]["written"] == 0 and summary["counts"]["rejected"] == 1
    html = _html(tmp_path / "data")
    assert html.count("<img ") == 2  # rejects by reason, throughput
    assert _kpi(html, "documents in the dataset") == "0"
    for note in ("This output holds no documents yet.", "No scored documents.",
                 "No document has a published_date", "No document has an agency or a dateline",
                 "No summaries."):
        assert note in html


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([str(EXE), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_report_command_writes_the_page_and_fails_in_one_line(digest_output, tmp_path):
    out, _, _ = digest_output
    target = tmp_path / "sub" / "page.html"
    ok = _cli("report", str(out), "--out", str(target))
    assert ok.returncode == 0, ok.stderr
    assert target.is_file() and target.read_text(encoding="utf-8").count("<img ") == PLOTS
    assert str(target) in ok.stdout.replace("\n", "")
    not_there = tmp_path / "a-long-folder-name-so-that-the-message-is-wider-than-eighty-cols"
    missing = _cli("report", str(not_there))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "Traceback" not in missing.stderr
    assert "not a folder" in missing.stderr and str(not_there) in missing.stderr
    (tmp_path / "plain").mkdir()
    with pytest.raises(ReportError, match="not a textdigest output"):
        load_output(tmp_path / "plain")


# ------------------------------------------------------------------------ Prefect artifacts


def _artifacts(flow_run_id: str) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert len({a.key for a in found}) == len(found)
    return {a.key: a for a in found}


def test_each_run_publishes_artifacts_that_match_its_manifest(digest_output):
    out, runs, _ = digest_output
    for run in runs:
        manifest = json.loads(Path(run["manifest_path"]).read_text())
        arts = _artifacts(manifest["flow_run_id"])
        assert set(arts) == {"digest-summary", "digest-rejects", "digest-timings",
                             "digest-report"}
        assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in arts)
        assert arts["digest-summary"].type == "markdown"
        md = arts["digest-summary"].data
        c = manifest["counts"]
        assert (f"| {c['read']} | {c['written']} | {c['rejected']} | {c['skipped_existing']} "
                f"| {manifest['docs_per_s']:.2f} |") in md
        assert manifest["run_id"] in md and manifest["status"] in md
        for model in ("encoder", "summarizer", "sentiment_model"):
            assert manifest["models"][model]["name"] in md
        for reason, n in manifest["rejects_by_reason"].items():
            assert f"| {reason} | {n} |" in md
        assert json.loads(arts["digest-rejects"].data) == [
            {"reason": k, "rejects": v} for k, v in manifest["rejects_by_reason"].items()]
        assert json.loads(arts["digest-timings"].data) == [
            {"step": k, "seconds": v} for k, v in manifest["timings_s"].items()]
        assert (out / "report.html").resolve().as_uri() in arts["digest-report"].data
    first, second = (json.loads(Path(r["manifest_path"]).read_text()) for r in runs)
    assert first["rejects_by_reason"] and not second["rejects_by_reason"]
    assert "No rejects." in _artifacts(second["flow_run_id"])["digest-summary"].data


def test_no_report_unless_asked_and_the_link_artifact_is_left_out(prefect_harness, tmp_path):
    from flows.digest import digest

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("Shares rose sharply. Investors cheered the results.")
    summary = digest(DigestConfig(input=tmp_path / "in", output=tmp_path / "data",
                                  show_progress=False))
    assert summary["report_path"] is None and not (tmp_path / "data" / "report.html").exists()
    assert set(_artifacts(summary["flow_run_id"])) == {"digest-summary", "digest-rejects",
                                                       "digest-timings"}


def test_long_date_spans_get_coarser_periods():
    from tasks.outputs.report import MAX_PERIODS, _date_buckets

    start = dt.date(2020, 1, 1)
    for days, unit in ((30, "day"), (200, "week"), (900, "month"), (3000, "quarter")):
        dates = [start + dt.timedelta(days=d) for d in range(days)]
        got, key = _date_buckets(dates)
        assert got == unit
        assert len({key(d) for d in dates}) <= MAX_PERIODS
        assert sorted({key(d) for d in dates}) == list(dict.fromkeys(key(d) for d in dates))


def test_a_run_that_fails_its_checks_still_says_why_in_its_artifacts(prefect_harness, tmp_path):
    from flows.digest import RunCheckError, digest

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("Profits fell. The company cut its forecast.")
    (tmp_path / "in" / "b.txt").write_text(" ")
    with pytest.raises(RunCheckError):
        digest(DigestConfig(input=tmp_path / "in", output=tmp_path / "data",
                            max_reject_ratio=0.1, show_progress=False, report=True))
    (manifest,) = [json.loads(p.read_text()) for p in (tmp_path / "data" / "runs").glob("*")]
    assert manifest["status"] == "failed"
    md = _artifacts(manifest["flow_run_id"])["digest-summary"].data
    assert "**Status:** failed" in md and "max-reject-ratio" in md
    assert (tmp_path / "data" / "report.html").is_file()  # the report shows what went wrong


def test_report_names_the_most_mentioned_and_the_best_and_worst_news_entities(tmp_path):
    """Entities aggregated over documents by name: documents, mentions, mean score; the most
    positive and negative of those named in two or more documents; older shards (no column)
    and --no-entities rows (null) count as none."""
    def ent(name, score, mentions=1):
        return {"name": name, "type": "organization", "mentions": mentions,
                "sentiment": "positive" if score > 0 else "negative", "score": score}

    rows = [[ent("Tesco", 0.6, 2), ent("Sainsbury", -0.4)], [ent("tesco", 0.2), ent("Asda", 0.9)],
            [ent("Sainsbury", -0.8), ent("Barclays", -0.1)], [ent("Barclays", -0.3)], None]
    docs = [Document(doc_id=f"e{i}", source="s", raw_text="x", text="t", summary="s",
                     sentiment="neutral", sentiment_score=0.0, sentiment_probs=(0.2, 0.6, 0.2),
                     entities=e) for i, e in enumerate(rows)]
    prov = {"run_id": "r", "textdigest_version": "0", "processed_at": dt.datetime.now(dt.UTC),
            "cleaner": "{}", **{k: {"name": "m", "revision": "r", "params": "{}"}
                                for k in ("encoder", "summarizer", "sentiment_model")}}
    (tmp_path / "documents").mkdir()
    table = documents_to_table(docs, prov)
    pq.write_table(table, tmp_path / "documents" / "part-0.parquet")
    pq.write_table(table.drop_columns(["entities"]).slice(0, 1),  # an older shard
                   tmp_path / "documents" / "part-1.parquet")
    stats = compute_stats(load_output(tmp_path))["entities"]
    top = {r["name"]: r for r in stats["top"]}
    # by documents, then mentions: Tesco (2, 3) before Barclays and Sainsbury (2, 2)
    assert [r["name"] for r in stats["top"][:3]] == ["Tesco", "Barclays", "Sainsbury"]
    assert top["Tesco"]["documents"] == 2 and top["Tesco"]["mentions"] == 3
    assert top["Tesco"]["mean_score"] == pytest.approx(0.4)
    assert [r["name"] for r in stats["positive"]] == ["Tesco"]  # Asda: one document only
    assert [r["name"] for r in stats["negative"]] == ["Sainsbury", "Barclays"]
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert 'id="entities"' in html and "Sainsbury" in html
