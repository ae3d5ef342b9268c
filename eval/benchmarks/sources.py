"""Where the real benchmarks' files come from (world=full): a local folder first; a file missing
there is downloaded from the benchmark's home when that is reachable; otherwise the error says which
file to put where and where to get it.

Each benchmark's config names its folder (``data_dir``) and, per file, the path inside that folder
and the address it is downloaded from (``files: {relative/path: url}``), each address pinned to the
commit of the version the papers used. A download is written atomically into the folder, so the
next run (and any machine sharing the folder) reads it locally.

``checks`` (``{relative/path: sha256}`` plus ``version``, the name of the pinned version) makes
every file, local or downloaded, prove it is that version: a file whose sha256 differs is refused
with an error naming the file, the expected and found checksums and, when its contents show it,
the version it is instead (e.g. an Arena-Hard v2.0 question file, AlpacaEval 1's reference).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Optional

from distill.files import atomic_write

log = logging.getLogger(__name__)


class MissingBenchmarkFile(FileNotFoundError):
    """A benchmark file neither present locally nor downloadable."""


class WrongVersionFile(ValueError):
    """A benchmark file that is present but is not the pinned version (checksum or format)."""


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_record(path: Path):
    """The first JSON object of a JSON-lines file, or the first item of a JSON list (None if neither)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
            return rows[0] if rows and isinstance(rows, list) else None
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        return json.loads(line)
    except (json.JSONDecodeError, StopIteration):
        return None


def identify_version(path: str | os.PathLike) -> Optional[str]:
    """What another version's benchmark file is, judged from its contents (None when unknown)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - not YAML: nothing to say
            return None
        if isinstance(cfg, dict) and cfg.get("bench_name") and cfg["bench_name"] != "arena-hard-v0.1":
            return f"a judge config of {cfg['bench_name']} (bench_name: {cfg['bench_name']})"
        return None
    row = _first_record(p)
    if not isinstance(row, dict):
        return None
    if "uid" in row and "prompt" in row:
        return "an Arena-Hard v2.0 question file (rows with uid/prompt, not question_id/turns)"
    if "uid" in row and "messages" in row:
        return "an Arena-Hard v2.0 answer file (rows with uid/messages, not question_id/choices)"
    if row.get("generator") == "text_davinci_003":
        return "AlpacaEval 1's reference outputs (generator text_davinci_003, not gpt4_1106_preview)"
    return None


def verify_files(root: str | os.PathLike, sha256: Mapping[str, str], *, what: str, version: str = "",
                 strict: bool = True) -> None:
    """Check each present file's sha256 against the pinned one; a mismatch raises
    :class:`WrongVersionFile` naming the file (``strict=False``: a warning instead)."""
    root = Path(root).expanduser()
    for rel, expected in sha256.items():
        p = root / rel
        if not p.is_file() or not expected:
            continue
        found = sha256_of(p)
        if found == str(expected).lower():
            continue
        other = identify_version(p)
        message = (f"{what}: {p} is not the pinned {version or 'version'}"
                   + (f"; it is {other}" if other else "")
                   + f" (sha256 {found}, expected {expected}). Replace it with the pinned file (delete it and "
                     "the run downloads it again), or set eval.verify_checksums=false to use it anyway "
                     "(its scores are then not the benchmark's).")
        if strict:
            raise WrongVersionFile(message)
        log.warning("%s", message)


def _download(url: str, dest: Path, timeout_s: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(url, headers={"User-Agent": "distill-bench"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 - configured benchmark homes
        data = r.read()
    atomic_write(dest, data)


def ensure_files(data_dir: str | os.PathLike, files: Mapping[str, Optional[str]], *, what: str,
                 download: bool = True, timeout_s: float = 30.0, required: bool = True,
                 checks: Optional[Mapping] = None, strict: bool = True) -> Path:
    """Make sure every ``files`` entry exists under ``data_dir`` (downloading the missing ones when
    ``download``); return ``data_dir``. Raises :class:`MissingBenchmarkFile` listing every file
    that is still missing, where to put it and where it comes from (``required=False``: logs that
    message as a warning instead). ``checks``: ``{"version": name, "sha256": {rel: hex}}``, see
    :func:`verify_files` (``strict``: refuse a mismatch, else warn)."""
    root = Path(data_dir).expanduser()
    missing = []
    for rel, url in files.items():
        dest = root / rel
        if dest.is_file():
            continue
        reason = "downloads are off (download=false)" if not download else "no address configured"
        if download and url:
            try:
                log.info("%s: downloading %s -> %s", what, url, dest)
                _download(url, dest, timeout_s)
                continue
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = f"download failed: {getattr(e, 'reason', e)}"
        missing.append((rel, dest, url, reason))
    if missing:
        lines = [f"  - {rel}: put it at {dest}" + (f" (get it from {url})" if url else "") + f" [{reason}]"
                 for rel, dest, url, reason in missing]
        message = (f"{what}: {len(missing)} file(s) missing in {root}:\n" + "\n".join(lines) +
                   "\nPut them there (or point the config's data_dir at a folder holding them).")
        if required:
            raise MissingBenchmarkFile(message)
        log.warning("%s", message)
    if checks:
        verify_files(root, checks.get("sha256") or {}, what=what, version=checks.get("version", ""), strict=strict)
    return root
