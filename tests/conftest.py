"""Shared fixtures: compose the real configs with Hydra, shrunk to run in seconds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
SHARED = ROOT.parent / "shared"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A toy world small enough to train every stage in a few seconds.
TINY = [
    "data.sizes.sft=256", "data.sizes.pairs=128", "data.sizes.prompts=32", "data.sizes.eval=24",
    "data.sizes.val=16", "stages.sft_teacher.steps=6", "stages.dpo_teacher.steps=4",
    "stages.sft_student.steps=6", "stages.distill.steps=4", "stages.sft_teacher.batch_size=8",
    "stages.dpo_teacher.batch_size=8", "stages.sft_student.batch_size=8", "stages.distill.batch_size=8",
    "eval.n_prompts=24", "eval.n_boot=50", "trainer.enable_progress_bar=false", "checkpoint_every=2",
]


def compose_cfg(overrides: list[str] = (), tmp_path: Path | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    if tmp_path is not None:
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "out")
            cfg.paths.artifacts = str(tmp_path / "artifacts")
            cfg.paths.results = str(tmp_path / "results")
            cfg.paths.log_dir = str(tmp_path / "logs")
    return cfg


def resolved(cfg) -> dict:
    """The config without Hydra's own node (which needs a running job), fully resolved."""
    from omegaconf import OmegaConf

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return OmegaConf.to_container(cfg, resolve=True)


def no_downloads(monkeypatch):
    """Make any download or model load fail the test (dry runs and config checks build nothing)."""
    import datasets
    import transformers

    def refuse(*a, **k):
        raise AssertionError("the dry run tried to download or load a model / data set")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(*overrides: str):
        return compose_cfg([*TINY, *overrides], tmp_path)

    return make


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
