"""The allocator settings: large blocks come from the reusable heap instead of a fresh mmap each."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, sys
from distill import allocator
on = allocator.configure()

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
base = libc.mallinfo2()
buf = bytearray(64 << 20)  # 64 MiB through malloc
held = libc.mallinfo2()
del buf
after = libc.mallinfo2()
print(json.dumps({"on": on, "mmapped": held.hblkhd - base.hblkhd, "heap": held.arena, "heap_after_free": after.arena}))
"""


def probe(env_value: str | None) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "DISTILL_MALLOC"}
    if env_value is not None:
        env["DISTILL_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def glibc_with_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not glibc_with_mallinfo2(),
                    reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
def test_large_blocks_come_from_the_heap_and_stay_there():
    got = probe(None)
    assert got["on"] is True
    assert got["mmapped"] < 1 << 20 and got["heap"] >= 64 << 20
    assert got["heap_after_free"] >= 64 << 20  # not trimmed back to the OS after the free


@pytest.mark.skipif(not sys.platform.startswith("linux") or not glibc_with_mallinfo2(),
                    reason="needs glibc >= 2.33 (mallopt, mallinfo2)")
@pytest.mark.parametrize("value", ["default", "0"])
def test_the_switch_keeps_glibcs_defaults(value):
    got = probe(value)
    assert got["on"] is False
    assert got["mmapped"] >= 64 << 20  # glibc's default: a block this large is its own mmap
