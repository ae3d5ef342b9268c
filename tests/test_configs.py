"""Every option of every config group composes, resolves and instantiates its parts."""
from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg, resolved
from pathlib import Path


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "method", "data", "world", "trainer", "logger", "eval", "experiment"])
def test_every_option_composes(group, tmp_path):
    opts = options(group)
    assert opts, f"conf/{group} is empty"
    for opt in opts:
        cfg = compose_cfg([f"{group}={opt}"], tmp_path)
        assert resolved(cfg)["world"]["source"] in ("toy", "hub")


@pytest.mark.parametrize("family", options("model") if Path(CONF).exists() else [])
def test_model_families_name_real_classes(family, tmp_path):
    cfg = compose_cfg([f"model={family}"], tmp_path)
    cls = get_class(cfg.model.config_class)
    get_class(cfg.model.decoder_layer)
    for role in ("teacher", "student"):
        assert "/" in cfg.model[role].hub_id
        cls(**cfg.model[role].toy)  # sizes are valid for the architecture


def test_full_world_composes_and_validates(tmp_path):
    cfg = compose_cfg(["world=full", "model=gemma", "method=dpo"], tmp_path)
    assert cfg.world.source == "hub" and cfg.data.name == "full"
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.stages.dpo_teacher.beta == 0.01
    for part in ("sft", "pairs", "prompts", "eval"):
        from distill.hub_data import CONVERTERS
        assert cfg.data[part].schema in CONVERTERS


def test_trainers_instantiate(tmp_path):
    for opt in ("cpu",):
        trainer = instantiate(compose_cfg([f"trainer={opt}"], tmp_path).trainer, logger=False, max_steps=1)
        assert trainer.max_steps == 1


def test_method_hyperparameters_override_at_top_level(tmp_path):
    cfg = compose_cfg(["method=dpo", "method.beta=0.3"], tmp_path)
    assert cfg.method.beta == 0.3


@pytest.mark.parametrize("override,valid", [("method=nope", "dpo"), ("model=nope", "gemma")])
def test_unknown_option_lists_the_valid_ones(override, valid, tmp_path):
    with pytest.raises(MissingConfigException) as e:
        compose_cfg([override], tmp_path)
    assert valid in str(e.value) and "Available options" in str(e.value)
