"""The pinned mmap threshold: after a large block is freed, mid-sized blocks still use mmap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses, servers or clusters

PROBE = """
import ctypes, sys
from tasks.runtime.malloc import pin_mmap_threshold
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd usmblks "
                                               "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else False
libc.free(libc.malloc(8 << 20))  # unpinned, this raises glibc's threshold to 8 MiB
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(pinned, libc.mallinfo2().hblks - before)
"""


def _probe(mode: str, **env: str) -> str:
    root = Path(__file__).resolve().parents[1]
    # Any glibc tunable in the environment (Dask's nanny sets MALLOC_TRIM_THRESHOLD_ during
    # the Dask tests) turns the dynamic threshold off: the probe runs without them.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    return subprocess.run([sys.executable, "-c", PROBE, mode], cwd=root, env=environ,
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_pinned_threshold_keeps_mid_sized_blocks_on_mmap():
    assert _probe("pin") == ["True", "1"]  # a 1 MiB block after an 8 MiB free: its own mmap
    assert _probe("no") == ["False", "0"]  # glibc's default: from the heap
    # a threshold the user set is theirs: left alone
    assert _probe("pin", MALLOC_MMAP_THRESHOLD_="16777216")[0] == "False"

