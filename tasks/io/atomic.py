"""Atomic files: a reader (or a crashed run) sees the old file or the whole new one.

Every writer in textdigest goes through here: shards and the index (`publish_temporary`),
manifests, cards and reports (`atomic_write_bytes`, `atomic_write_json`), ONNX exports and
staged files (`atomic_path`). A file is written under a hidden temporary name in its final
folder, fsynced, renamed, and the folder fsynced.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def publish_temporary(tmp: Path, final: Path) -> None:
    """Make a fully written temporary file visible under its final name (fsync, rename)."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A hidden temporary path beside `final` to write (or link) to; on success it becomes
    `final` (fsync, rename), on failure it is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{os.getpid()}.{final.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        publish_temporary(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
