"""Faults of the machine a run can meet, said in one sentence instead of a traceback.

A full disk, an output folder that stops being writable, an input folder that vanishes
mid-run: the run stops, and because every file is written under a temporary name and
renamed when complete (`tasks.io.atomic`), what it finished stays whole and readable and the
next run skips it. The user needs to know that, and what to do, not where Arrow noticed.
"""

from __future__ import annotations

import errno
from pathlib import Path

KEPT = ("every file it completed is whole and kept, nothing half-written is visible, and "
        "the next run skips what was written")


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    text = str(exc).lower()  # Arrow's I/O errors carry the errno in their text
    for code, words in ((errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota exceeded"),
                        (errno.EROFS, "read-only file system"),
                        (errno.EACCES, "permission denied")):
        if words in text:
            return code
    return None


def _under(path: str | None, folder: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False


def known_fault(exc: BaseException | None, input_path: Path, output: Path) -> str | None:
    """One line for a known fault anywhere in `exc`'s chain, or None."""
    for e in _chain(exc):
        code = _errno(e)
        if code in (errno.ENOSPC, errno.EDQUOT):
            what = "no space left on the device" if code == errno.ENOSPC else "disk quota full"
            return (f"{what} while writing {output}: the run stopped; {KEPT}. Free space and "
                    "run again")
        filename = getattr(e, "filename", None)
        if code in (errno.EACCES, errno.EPERM, errno.EROFS) and (
                filename is None or _under(filename, output)):
            return (f"output not writable ({e.strerror or 'permission denied'}): "
                    f"{filename or output}: the run stopped; {KEPT}. Make it writable and "
                    "run again")
        if isinstance(e, FileNotFoundError) and (_under(filename, input_path)
                                                 or not Path(input_path).exists()):
            return (f"input vanished while the run read it: {filename or input_path}: the "
                    f"run stopped; {KEPT}. Restore the input and run again")
    return None


def is_known_fault(exc: BaseException | None) -> bool:
    """Whether a log record's exception is one of these (its traceback is not shown)."""
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
    return exc is not None and any(_errno(e) in codes for e in _chain(exc))
