"""Small helpers every layer above uses: atomic file writes, config nodes as plain data, and the
project's config composed outside a Hydra app (tests, bench scripts)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Mapping

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[1]


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically: a temporary file in the same
    folder, then a rename, so a reader sees the old file or the whole new one, never half of it (a
    killed write leaves no temporary file behind). Creates the folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # the umask's permissions, as open()
    try:
        with open(tmp, "xb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def plain(node, *, resolve: bool = True, drop_hydra: bool = False) -> Any:
    """A config node as plain data (resolved by default; ``drop_hydra``: without Hydra's own node); a
    mapping that is not a config node as a dict, anything else (None, a list, a number) as it is."""
    if OmegaConf.is_config(node):
        if drop_hydra and "hydra" in node:
            node = OmegaConf.masked_copy(node, [k for k in node if k != "hydra"])
        return OmegaConf.to_container(node, resolve=resolve)
    return dict(node) if isinstance(node, Mapping) else node


def compose_config(overrides=(), root: str | os.PathLike | None = None, *, return_hydra_config: bool = False):
    """``conf/config.yaml`` composed with ``overrides`` outside a Hydra app; with ``root``, every
    path of ``paths`` (artifacts, results, logs, the run's output) lies under that folder."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    if root is not None:
        root = Path(root)
        with open_dict(cfg):
            cfg.paths.root_dir = str(root)
            cfg.paths.output_dir = str(root / "out")
            cfg.paths.artifacts = str(root / "artifacts")
            cfg.paths.results = str(root / "results")
            cfg.paths.log_dir = str(root / "logs")
    return cfg
