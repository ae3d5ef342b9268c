"""Keep large freed buffers in the process instead of handing them back to the OS after each step.

glibc serves every allocation above its mmap threshold (128 KiB, adapted up to 32 MiB at most) with
a fresh ``mmap`` and ``munmap``s it on ``free``; logits, activations and their gradients are far
larger, so on the CPU every training step maps them again and touches every page of them anew. On
the 2-core bench machine that was 0.95 s of a 3.6 s SFT step spent in the kernel (447k minor page
faults) and 2.1 s of a 7.8 s DCKD step. ``configure()`` calls ``mallopt`` through ctypes:

    M_MMAP_MAX = 0            never mmap: large blocks come from the heap and are reused
    M_TRIM_THRESHOLD = 2 GiB  free memory at the top of the heap is not returned after each step

The heap then holds the step's peak working set between steps (the same bytes the step faults in
anyway), and grows no further while the steps keep their shapes; ``bench/run.py`` prints the kernel
share of a step and the peak RSS over its repetitions. ``mallopt`` acts on later allocations, so it
is called first thing in ``run.py``, ``distill-bench`` and ``bench/run.py``; processes forked after
that inherit it. Set ``DISTILL_MALLOC=default`` (or ``0``/``off``) to keep glibc's defaults; on
anything other than glibc (macOS, musl) nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # <malloc.h>
TRIM_THRESHOLD = 2**31 - 1
ENV = "DISTILL_MALLOC"

_state: dict[str, object] = {}


def configure() -> bool:
    """Apply the settings above once per process; True when they are in effect."""
    if "on" in _state:
        return bool(_state["on"])
    _state["on"] = False
    if os.environ.get(ENV, "").strip().lower() in ("0", "off", "false", "default", "no"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl's mallopt is a no-op
    except (OSError, AttributeError):
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state["on"] = ok
    return ok

