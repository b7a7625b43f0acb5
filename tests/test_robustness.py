"""Input the models cannot serve (other languages, fragments, boilerplate), token redaction,
transient read retries, streaming of big inputs and the end-of-run accounting check."""

from __future__ import annotations

import errno
import json
import logging
import tracemalloc

import pytest

from flows.config import DigestConfig
from tasks.io.ingest import batched, iter_items, retry_transient
from tasks.models.summarizers import is_boilerplate_only
from tasks.pipeline import run_step
from tasks.record import Document
from tasks.runtime.secrets import REDACTED, install_redaction, redact
from tasks.steps import clean, language, summarize
from tasks.steps.base import Batch, StepSettings
from tasks.steps.language import MIN_LETTERS, UNDETERMINED, detect_language

FRENCH = ("Le président de la République a annoncé mardi une réforme importante des "
          "retraites, qui sera présentée au Parlement le mois prochain.")
GERMAN = ("Die Bundesregierung hat am Mittwoch ein neues Gesetz beschlossen, das die "
          "Mietpreise in den großen Städten begrenzen soll.")
ENGLISH = ("The central bank raised interest rates by half a percentage point on Wednesday, "
           "its largest increase in two decades, as inflation kept climbing.")


def _batch(*texts: str) -> Batch:
    docs = [Document(doc_id=f"d{i}", source=f"s{i}", raw_text=t) for i, t in enumerate(texts)]
    return run_step(clean.STEP, Batch(seq=0, docs=docs, n_items=len(docs)), StepSettings())


def test_language_is_detected_and_short_texts_are_undetermined():
    assert detect_language(ENGLISH).code == "en"
    assert detect_language(FRENCH).code == "fr"
    assert detect_language(GERMAN).code == "de"
    short = detect_language("Stocks fall.")
    assert short.code == UNDETERMINED and short.score is None
    assert sum(c.isalpha() for c in "Stocks fall.") < MIN_LETTERS
    assert detect_language("12,345 67.8% -- 2024").code == UNDETERMINED


@pytest.mark.parametrize("policy", ["keep", "reject"])
def test_non_english_is_kept_and_flagged_or_rejected_by_configuration(policy):
    batch = run_step(language.STEP, _batch(ENGLISH, FRENCH, "Stocks fall."),
                     StepSettings(non_english=policy))
    langs = {d.source: d.language for d in batch.docs}
    assert langs["s0"] == "en" and langs["s2"] == UNDETERMINED  # never rejected for brevity
    if policy == "keep":
        assert langs["s1"] == "fr" and not batch.rejects
    else:
        assert "s1" not in langs
        (reject,) = batch.rejects
        assert reject.reason == "not_english" and "fr" in reject.detail


def test_the_non_english_option_is_validated():
    assert DigestConfig().input.non_english == "keep"
    with pytest.raises(ValueError):
        DigestConfig(non_english="drop")


def test_short_texts_are_their_own_summary_and_say_so():
    batch = _batch("Oil prices jump after the storm.",
                   "Shares fell. Bonds rose. Gold was flat.")
    batch = run_step(summarize.STEP, batch, StepSettings())  # short only: no model call needed
    for doc in batch.docs:
        assert doc.summary_method == "whole_text"
        assert doc.summary == " ".join(doc.sentences)
        assert doc.summary_sentence_ids == list(range(len(doc.sentences)))


@pytest.mark.parametrize("page", [
    "We use cookies to improve your experience. Accept all cookies. Manage settings.",
    "Home | News | Sport | Weather | Contact us",
    "Subscribe to our newsletter! Sign up for updates. Menu",
    "Copyright 2024 Example Media. All rights reserved. Privacy policy. Terms of use.",
    "All rights reserved.",
    "(c) 2024 Example Media. All rights reserved.",
])
def test_boilerplate_only_pages_are_rejected(page):
    batch = _batch(page)
    assert not batch.docs
    assert [r.reason for r in batch.rejects] == ["boilerplate_only"]


def test_markup_without_text_is_empty_not_boilerplate():
    batch = _batch("<div><p> </p><br/></div>")
    assert [r.reason for r in batch.rejects] == ["empty_after_cleaning"]


def test_news_with_a_boilerplate_line_and_headlines_are_not_boilerplate():
    assert not is_boilerplate_only(["Oil prices jump after the storm."])
    assert not is_boilerplate_only([ENGLISH, "Subscribe to our newsletter."])
    assert is_boilerplate_only(["Subscribe to our newsletter.", "Menu"])
    batch = _batch(ENGLISH + "\n\nSubscribe to our newsletter.")
    assert len(batch.docs) == 1 and not batch.rejects


def test_redaction_hides_token_values_in_text_and_log_records(monkeypatch, caplog):
    token = "hf_" + "A1b2C3d4" * 5
    monkeypatch.setenv("HF_TOKEN", token)
    assert token not in redact(f"GET https://x/?t={token} failed") and REDACTED in redact(token)
    assert redact("no secrets here") == "no secrets here"
    install_redaction()
    install_redaction()  # idempotent: one wrapper
    caplog.set_level(logging.INFO, logger="prefect.test")
    logging.getLogger("prefect.test").info("loading with token %s", token)
    try:
        raise RuntimeError(f"auth failed for {token}")
    except RuntimeError:
        logging.getLogger("prefect.test").exception("boom")
    assert token not in caplog.text and REDACTED in caplog.text


def test_transient_os_errors_are_retried_and_others_are_not():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return "read"

    assert retry_transient(flaky) == "read" and len(calls) == 3
    calls.clear()

    def missing() -> str:
        calls.append(1)
        raise OSError(errno.ENOENT, "No such file or directory")

    with pytest.raises(OSError):
        retry_transient(missing)
    assert len(calls) == 1  # a missing file is not transient: no retry


def test_a_big_jsonl_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "A sentence about markets. " * 16})
    with path.open("w") as fh:
        for i in range(40_000):
            fh.write(line[:-1] + f', "id": "{i}"}}\n')
    size = path.stat().st_size
    tracemalloc.start()
    first = next(batched(iter_items(path), 64))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(first) == 64 and size > 15_000_000
    assert peak < size / 20  # reading the first batch never loads the file


def test_an_accounting_mismatch_fails_the_run_and_is_recorded(tmp_path, prefect_harness,
                                                              monkeypatch):
    """Fault injection: the intake loses one item, as a bug would; the run must fail."""
    from flows import digest as digest_module

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("Oil prices jump after the storm.")
    (tmp_path / "in" / "b.txt").write_text("Stocks fall as bonds rally on rate hopes.")
    real_batch = digest_module._Intake.batch

    def lossy(self, seq, items):
        batch = real_batch(self, seq, items)
        batch.docs = batch.docs[1:]  # dropped without a reject: what the check exists for
        return batch

    monkeypatch.setattr(digest_module._Intake, "batch", lossy)
    out = tmp_path / "out"
    with pytest.raises(digest_module.RunCheckError, match="accounting mismatch"):
        digest_module.digest(DigestConfig(input=tmp_path / "in", output=out,
                                          show_progress=False))
    (manifest,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert manifest["status"] == "failed" and manifest["accounted"] is False
