"""One writer per output folder: a run holds `OUTPUT/.textdigest.lock` while it writes.

Each run reads the output's document ids when it starts and skips those; two runs started
together both read none and both write every document. So a run takes an exclusive
`flock` on the output's lock file before it reads anything, and keeps it until its manifest
is written. A second run either refuses at once, in one line naming the holder's run id and
start time (`OutputBusy`), or waits for it (`wait_s`) and then skips what the first wrote.

`flock` is released by the kernel when its holder exits in any way, SIGKILL and crashes
included, so a dead run never blocks the next one and there is no stale lock to take over.
It holds between processes of one machine on any local file system, and between machines
on NFS v4 (Linux maps `flock` to NFS byte-range locks). It does not hold on object stores
or FUSE mounts of them (s3fs, gcsfuse): write to a local or NFS folder and copy or publish
from there.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".textdigest.lock"
POLL_S = 0.5


class OutputBusy(RuntimeError):
    """Another run is writing this output (the message is one line for the user)."""

    def __init__(self, output: Path, holder: dict | None, waited_s: float | None):
        self.holder = holder or {}
        who = (f"run {self.holder.get('run_id', '?')} (pid {self.holder.get('pid', '?')} on "
               f"{self.holder.get('host', '?')}, started {self.holder.get('started_at', '?')})"
               if holder else "another run")
        waited = f" after waiting {waited_s:g} s" if waited_s else ""
        super().__init__(f"output {output} is being written by {who}{waited}; wait for it "
                         "to finish, or run again with --wait SECONDS")


def read_holder(output: Path) -> dict | None:
    """What the lock's holder wrote about itself (None: unknown or no holder)."""
    try:
        text = (Path(output) / LOCK_NAME).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def is_locked(output: Path) -> bool:
    """Whether a run holds the output now (a probe: takes and drops the lock at once)."""
    path = Path(output) / LOCK_NAME
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


@contextmanager
def hold_output(output: Path, run_id: str, wait_s: float | None = None,
                poll_s: float = POLL_S, reader: bool = False) -> Iterator[dict | None]:
    """Hold the output's lock for the body; refuse (`OutputBusy`) when another run holds it,
    at once or after `wait_s` seconds. Yields what the holder file says of this run.

    `reader` (publish staging, verify without repair): an output this process may not
    write is read without the lock (yields None), as before the lock existed."""
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd = os.open(output / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if reader and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            yield None
            return
        raise
    start = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if wait_s is None or waited >= wait_s:
                    raise OutputBusy(output, _holder_soon(output), wait_s) from None
                time.sleep(min(poll_s, max(0.0, wait_s - waited)))
        me = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
              "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        os.fsync(fd)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)  # the next reader sees no holder, not a finished one
    finally:
        os.close(fd)  # drops the lock


def _holder_soon(output: Path, tries: int = 5) -> dict | None:
    """The holder's note: it writes it just after taking the lock, so retry briefly."""
    for _ in range(tries):
        holder = read_holder(output)
        if holder:
            return holder
        time.sleep(0.05)
    return None
