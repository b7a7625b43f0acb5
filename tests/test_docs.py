"""The documentation: README is a front page that states the commands CI runs, the MkDocs
site builds strictly (no broken link, no page left out of the nav), and the dataset page
names every column of the schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from tasks.record import COLUMN_DOCS, DOCUMENT_SCHEMA

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = REPO / "docs"
README_LIMIT = 12_000

# The two set-up-and-run commands and the test command, as README's Quick start states them.
SETUP = ('pip install -e ".[dev]"', "textdigest run")
TEST = "pytest"


def _commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks, comments removed."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines += [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_readme_is_a_front_page():
    assert len(README) <= README_LIMIT, f"README.md has {len(README)} characters"


def test_readme_states_the_commands_ci_runs():
    """The Quick start's commands, exactly, and .ci/run runs those (and says so)."""
    assert _commands(README)[:3] == [*SETUP, TEST]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in (*SETUP, TEST):
        assert f"(README: {command}" in ci.replace('\\"', '"'), command
    assert re.search(r'^time pip install --quiet -e "\.\[dev\]"$', ci, re.M)
    assert re.search(r"^textdigest run( --no-progress)?$", ci, re.M)
    assert re.search(r"&& pytest\)$", ci, re.M)
    # the docs' quick start says the same
    assert _commands((DOCS / "index.md").read_text(encoding="utf-8"))[:3] == [*SETUP, TEST]


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (REPO / target).exists(), f"README.md links to missing {target}"


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["site_name"] == "textdigest" and config["docs_dir"] == "docs"
    assert config["theme"]["name"] == "material"
    nav = {page for entry in config["nav"] for page in entry.values()}
    assert nav == {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}


def test_dataset_page_names_every_column():
    """The column table of docs/dataset.md: every column of the schema, and no other (their
    descriptions for the dataset card live in COLUMN_DOCS, beside the schema)."""
    page = (DOCS / "dataset.md").read_text(encoding="utf-8")
    table = page.split("| column | type |", 1)[1].split("\n\n", 1)[0]
    first_cells = re.findall(r"^\|([^|]*)\|", table, re.M)
    named = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert named == set(DOCUMENT_SCHEMA.names), named ^ set(DOCUMENT_SCHEMA.names)
    assert set(COLUMN_DOCS) == set(DOCUMENT_SCHEMA.names)
    entity = DOCUMENT_SCHEMA.field("entities").type.value_type
    for field in entity:  # and the entities table, every field of its struct
        type_name = {"float": "float32"}.get(str(field.type), str(field.type))
        assert f"| `{field.name}` | {type_name} |" in page, field.name


@pytest.mark.slow  # a subprocess
def test_mkdocs_builds_strictly(tmp_path):
    """A broken link or anchor, or a page missing from the nav, fails the build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "dataset" / "index.html").is_file()
