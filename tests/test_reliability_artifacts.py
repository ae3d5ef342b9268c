"""The artifact store under real processes: a builder killed by SIGKILL leaves no half artifact and
the next process builds it; concurrent requests build once and every process reads a whole artifact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

# A process asking the store for one artifact. argv: store, mode (slow | fast), tag, report file.
CHILD = r'''
import hashlib, json, sys, time
from pathlib import Path
from distill.artifacts import ArtifactStore

store, mode, tag, report = sys.argv[1:5]

def build(out, work):
    Path(report + ".started").write_text(tag)
    with open(out / "blob.bin", "wb") as fh:          # written in pieces: a reader of a half artifact sees fewer
        for i in range(8):
            fh.write(bytes([i]) * 65536)
            fh.flush()
            time.sleep(30 if mode == "slow" and i == 3 else 0.05)
    (out / "who.txt").write_text(tag)

art = ArtifactStore(store).get_or_build("stage", {"k": 1}, build)
blob = (art.path / "blob.bin").read_bytes()
Path(report).write_text(json.dumps({"reused": art.reused, "who": (art.path / "who.txt").read_text(),
                                    "sha": hashlib.sha256(blob).hexdigest(), "size": len(blob)}))
'''


def _spawn(tmp_path: Path, mode: str, tag: str) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    report = tmp_path / f"report-{tag}.json"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store"), mode, tag, str(report)],
                            cwd=ROOT, start_new_session=True)
    return proc, report


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_killed_builder_leaves_no_half_artifact_and_a_waiting_process_builds_it(tmp_path):
    slow, slow_report = _spawn(tmp_path, "slow", "killed")
    _wait_for(Path(str(slow_report) + ".started"), slow)  # mid-build, holding the lock
    waiter, report = _spawn(tmp_path, "fast", "waiter")
    time.sleep(1.5)
    assert waiter.poll() is None  # blocked on the lock, not building beside the first process
    stage = tmp_path / "store" / "stage"
    assert not list(stage.glob("*/manifest.json")) and list(stage.glob("*.tmp-*"))  # only a temporary dir
    os.killpg(slow.pid, signal.SIGKILL)
    slow.wait(10)
    assert waiter.wait(60) == 0
    got = json.loads(report.read_text())
    assert got == {"reused": False, "who": "waiter", "sha": got["sha"], "size": 8 * 65536}
    (art,) = [p for p in stage.iterdir() if p.is_dir()]  # the killed build's temporary dir was removed
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["files"] == ["blob.bin", "who.txt"]
    assert manifest["checksums"]["blob.bin"]["size"] == 8 * 65536 and len(manifest["checksums"]["who.txt"]["sha256"]) == 64
    assert not slow_report.exists()


def test_concurrent_requests_build_once_and_all_read_the_whole_artifact(tmp_path):
    procs = [_spawn(tmp_path, "fast", f"p{i}") for i in range(3)]
    assert [p.wait(120) for p, _ in procs] == [0, 0, 0]
    reports = [json.loads(r.read_text()) for _, r in procs]
    assert sorted(r["reused"] for r in reports) == [False, True, True]
    builder = next(r["who"] for r in reports if not r["reused"])
    assert {r["who"] for r in reports} == {builder}  # everyone reads the one build
    assert {(r["sha"], r["size"]) for r in reports} == {(reports[0]["sha"], 8 * 65536)}
    assert len([p for p in tmp_path.glob("report-*.started")]) == 1  # one build function ran
