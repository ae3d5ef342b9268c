"""Content-addressed stage artifacts: key = hash of the config that determines them.

An artifact is a directory ``<root>/<stage>/<key>/`` holding the stage's files and a
``manifest.json``. It is built in a temporary sibling directory and renamed into place, so a
killed build never leaves a half artifact; a file lock makes two processes that ask for the same
artifact build it once (the second waits, then reuses it). A stage that needs scratch space that
survives a crash (checkpoints for resume) gets ``<root>/<stage>/<key>.work/``.

The manifest records every file's size and SHA-256. Reuse checks them: the sizes every time, the
checksums the first time a process reuses the artifact. An artifact that fails (a missing,
truncated or edited file, an unreadable manifest) is moved aside to ``<key>.corrupt-<time>/`` and
rebuilt, with a warning naming it and what was wrong.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from distill.strategies import follower_rank

log = logging.getLogger(__name__)

# Bump when a change to the code changes what a stage produces, so old artifacts are not reused.
CODE_VERSION = "2"
CHUNK = 1 << 20
_VERIFIED: set[str] = set()  # artifacts whose checksums this process has checked


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def describe_files(root: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` of every file under ``root`` (the manifest's record)."""
    return {str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": file_digest(p)}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def artifact_problem(path: Path, checksums: bool) -> str | None:
    """What is wrong with the published artifact at ``path`` (None: it is whole): an unreadable
    manifest, a file missing or of another size, or (``checksums``) another SHA-256."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        recorded = manifest["checksums"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its manifest.json cannot be read ({type(e).__name__}: {e})"
    for rel, want in recorded.items():
        f = path / rel
        if not f.is_file():
            return f"{rel} is missing"
        size = f.stat().st_size
        if size != want["size"]:
            return f"{rel} has {size} bytes, the manifest recorded {want['size']}"
    if checksums:
        for rel, want in recorded.items():
            if file_digest(path / rel) != want["sha256"]:
                return f"{rel} does not match its recorded SHA-256 (edited or damaged)"
    return None


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(spec: dict) -> str:
    """A short stable hash of a JSON-able spec (key order and 1.0 vs 1 do not matter)."""
    blob = json.dumps(_canonical({"spec": spec, "code": CODE_VERSION}), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path
    reused: bool

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


class ArtifactStore:
    """Builds each (stage, spec) once and returns its directory afterwards."""

    def __init__(self, root: str | os.PathLike, lock_timeout: float = -1):
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self.events: list[tuple[str, str, bool]] = []  # (stage, key, reused), for the run's summary

    def path(self, stage: str, spec: dict) -> Path:
        return self.root / stage / fingerprint(spec)

    def exists(self, stage: str, spec: dict) -> bool:
        return (self.path(stage, spec) / "manifest.json").exists()

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path, Path], None]) -> Artifact:
        """Return the artifact of ``stage`` for ``spec``, calling ``build(tmp_dir, work_dir)`` if absent.

        ``build`` writes its outputs into ``tmp_dir``; ``work_dir`` persists across crashes (for
        checkpoints) and is deleted once the artifact is published.
        """
        key = fingerprint(spec)
        final = self.root / stage / key
        final.parent.mkdir(parents=True, exist_ok=True)
        if follower_rank():
            if (final / "manifest.json").exists():  # rank 0 verifies (and rebuilds) what is reused
                return self._found(stage, key, final)
            return self._follow(stage, key, final, build)
        if (final / "manifest.json").exists() and self._verified(final) is None:
            return self._found(stage, key, final)
        with FileLock(str(final) + ".lock", timeout=self.lock_timeout):
            if (final / "manifest.json").exists():  # another process may have built it while we waited
                problem = self._verified(final)
                if problem is None:
                    return self._found(stage, key, final)
                self._set_aside(stage, final, problem)
            elif final.exists():  # a directory without a manifest is not an artifact: rebuild
                log.warning("%s has no manifest.json (not a finished artifact); rebuilding it", final)
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            tmp = final.parent / f"{key}.tmp-{os.getpid()}"
            work = final.parent / f"{key}.work"
            for stale in final.parent.glob(f"{key}.tmp-*"):  # left by a killed build (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
            work.mkdir(exist_ok=True)
            log.info("building %s/%s", stage, key)
            t0 = time.time()
            try:
                build(tmp, work)
                checksums = describe_files(tmp)
                manifest = {"stage": stage, "key": key, "spec": _canonical(spec), "code_version": CODE_VERSION,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "build_seconds": round(time.time() - t0, 2),
                            "files": sorted(checksums), "checksums": checksums}
                (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
                os.replace(tmp, final)
                _VERIFIED.add(str(final))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
        self.events.append((stage, key, False))
        return Artifact(stage, key, final, reused=False)

    def _follow(self, stage: str, key: str, final: Path, build: Callable[[Path, Path], None]) -> Artifact:
        """A distributed follower (rank > 0) runs the same build beside rank 0, so that it joins the
        build's collective training, into a private directory that it then deletes; it returns the
        artifact once rank 0 has published it. It takes no lock: rank 0 holds it."""
        tmp = final.parent / f"{key}.follower-{os.getpid()}"  # not a "{key}.tmp-*" that rank 0 clears
        work = final.parent / f"{key}.work"  # shared with rank 0: sharded checkpoints need one path
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        work.mkdir(exist_ok=True)
        try:
            build(tmp, work)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.time()
        while not (final / "manifest.json").exists():
            if 0 <= self.lock_timeout < time.time() - t0:
                raise TimeoutError(f"rank 0 did not publish {stage}/{key} within {self.lock_timeout} s")
            time.sleep(0.5)
        return self._found(stage, key, final)

    @staticmethod
    def _verified(path: Path) -> str | None:
        """None if the artifact is whole: sizes always, checksums once per process."""
        problem = artifact_problem(path, checksums=str(path) not in _VERIFIED)
        if problem is None:
            _VERIFIED.add(str(path))
        return problem

    @staticmethod
    def _set_aside(stage: str, path: Path, problem: str) -> Path:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        os.replace(path, aside)
        _VERIFIED.discard(str(path))
        log.warning("artifact %s is damaged: %s; moved aside to %s and rebuilding it", path, problem, aside)
        return aside

    def _found(self, stage: str, key: str, path: Path) -> Artifact:
        log.info("reusing %s/%s", stage, key)
        self.events.append((stage, key, True))
        return Artifact(stage, key, path, reused=True)


class KeyStore(ArtifactStore):
    """Computes keys and records them in ``events``; builds, reads and writes nothing (the keys of
    the artifacts a recipe reads, key tests)."""

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path, Path], None]) -> Artifact:
        key = fingerprint(spec)
        self.events.append((stage, key, True))
        return Artifact(stage, key, self.root / stage / key, reused=True)
