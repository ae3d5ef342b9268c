"""Where the real benchmarks' files come from (world=full): a local folder first; a file missing
there is downloaded from the benchmark's home when that is reachable; otherwise the error says which
file to put where and where to get it.

Each benchmark's config names its folder (``data_dir``) and, per file, the path inside that folder
and the address it is downloaded from (``files: {relative/path: url}``). A download is written
atomically into the folder, so the next run (and any machine sharing the folder) reads it locally.
"""
from __future__ import annotations

import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Optional

log = logging.getLogger(__name__)


class MissingBenchmarkFile(FileNotFoundError):
    """A benchmark file neither present locally nor downloadable."""


def _download(url: str, dest: Path, timeout_s: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(url, headers={"User-Agent": "distill-bench"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 - configured benchmark homes
        data = r.read()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_files(data_dir: str | os.PathLike, files: Mapping[str, Optional[str]], *, what: str,
                 download: bool = True, timeout_s: float = 30.0, required: bool = True) -> Path:
    """Make sure every ``files`` entry exists under ``data_dir`` (downloading the missing ones when
    ``download``); return ``data_dir``. Raises :class:`MissingBenchmarkFile` listing every file
    that is still missing, where to put it and where it comes from (``required=False``: logs that
    message as a warning instead)."""
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
    return root
