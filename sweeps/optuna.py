"""Hydra callback used by ``conf/hparams_search/*_optuna.yaml``.

Hydra's Optuna sweeper opens its study before any job runs, and SQLite creates a database file but
not the folder that holds it; this callback creates that folder when the multirun starts.
"""
from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback

SQLITE = "sqlite:///"


def sqlite_path(url: str | None) -> Path | None:
    """The file of an SQLite URL (``sqlite:////abs/x.db`` or ``sqlite:///rel/x.db``), else None."""
    if not url or not str(url).startswith(SQLITE) or str(url) == SQLITE + ":memory:":
        return None
    return Path(str(url)[len(SQLITE):])


class StorageDir(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        path = sqlite_path(config.hydra.sweeper.get("storage"))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
