"""Shared fixtures. Real parts only: the Prefect test harness, the built-in models."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports huggingface_hub or prefect: no network, quiet offline runs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# ONNX exports the tests make go to the checkout's pytest cache (ignored by git, cleared by
# `pytest --cache-clear`), never into the user's ~/.cache/textdigest.
os.environ.setdefault("TEXTDIGEST_CACHE", str(REPO / ".pytest_cache" / "textdigest"))
# The big evaluation data beside the checkout (../shared). Tests must not need it: a user's
# clone has nothing beside it. Benchmarks (bench/) read it; tests use FIXTURES.
SHARED = REPO.parent / "shared"
SEEDS = REPO / "seeds"
# Small committed inputs written for this project (Apache-2.0; see tests/data/README.md).
FIXTURES = REPO / "tests" / "data" / "fixtures"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API and database for the whole session (~7 s to start; up to
    minutes on a loaded CI machine, where Prefect's default 30 s wait timed out)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180), temporary_settings(
        updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    ):
        yield


def pytest_collection_modifyitems(config, items):
    """`slow`: subprocesses, servers, clusters, training (marked in the tests) and every test
    that runs a Prefect flow (it starts the temporary API). `pytest -m "not slow"` is the
    quick developer subset (docs/index.md)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
