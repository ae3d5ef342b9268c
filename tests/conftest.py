"""Shared fixtures: compose the real configs with Hydra, shrunk to run in seconds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill.files import compose_config, plain

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
SHARED = ROOT.parent / "shared"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A toy world small enough to train every stage in a few seconds: the smoke preset
# (conf/experiment/smoke.yaml), which bench/faults.py uses too.
TINY = ["experiment=smoke"]


def compose_cfg(overrides: list[str] = (), tmp_path: Path | None = None):
    return compose_config(overrides, tmp_path, return_hydra_config=True)


def resolved(cfg) -> dict:
    """The config without Hydra's own node (which needs a running job), fully resolved."""
    return plain(cfg, drop_hydra=True)


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
