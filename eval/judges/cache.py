"""On-disk cache of judge replies, keyed by (judge model, full request).

One SQLite file. Every reply is committed as soon as it arrives, so a run killed half-way loses
nothing it already paid for, and a rerun sends no request twice. SQLite's own locking makes the file
safe to share between the threads of one run and between concurrent runs on one machine.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


class JudgeCacheError(RuntimeError):
    """A judge cache file that SQLite cannot read (named, with the fix)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    reply TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(model: str, request: dict) -> str:
    """SHA-256 of the canonical JSON of (model, request): messages, sampling settings, everything."""
    blob = json.dumps({"model": model, "request": request}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """``get``/``put`` replies (plain dicts) for a judge model and a request dict."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False, isolation_level=None)
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                self._db.execute("SELECT COUNT(*) FROM replies").fetchone()
        except sqlite3.DatabaseError as e:
            raise JudgeCacheError(
                f"{self.path}: the judge cache cannot be read ({e}); fix: move it aside (mv {self.path} "
                f"{self.path}.corrupt) and rerun: a new cache is started, and the replies it held are asked again"
            ) from None

    def get(self, model: str, request: dict) -> Optional[dict]:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?",
                                   (request_key(model, request),)).fetchone()
        if row is None:
            return None
        try:
            reply = json.loads(row[0])
        except json.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):  # a damaged entry: asked again, and replaced by put()
            log.warning("%s: the cached reply of one %s request is not a JSON object; asking the judge again",
                        self.path, model)
            return None
        return reply

    def put(self, model: str, request: dict, reply: dict) -> None:
        key = request_key(model, request)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, model, request, reply, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, json.dumps(request, ensure_ascii=False), json.dumps(reply, ensure_ascii=False),
                 time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
