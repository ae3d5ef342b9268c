"""Configs for scaling out compose and validate without a GPU: trainers and their strategies
(DDP, FSDP, DeepSpeed ZeRO-2/3, multi-node, gradient accumulation) and the submitit launchers."""
from __future__ import annotations

import importlib.util
import os
import stat

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf, open_dict

from conftest import compose_cfg, resolved
from distill.strategies import follower_rank, micro_batch_size

GPU_TRAINERS = ["gpu", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"]
FAMILIES = ["gemma", "llama", "qwen", "danube"]
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
try:  # without any Hydra plugin installed the hydra_plugins namespace itself is missing
    HAS_SUBMITIT = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
except ModuleNotFoundError:
    HAS_SUBMITIT = False
SCHEMA_NOTE = r"ignore:(?s).*is validated against ConfigStore schema:UserWarning"


@pytest.mark.parametrize("trainer", GPU_TRAINERS)
@pytest.mark.parametrize("world", ["toy", "full"])
def test_gpu_trainers_compose_with_multi_node_and_accumulation_fields(trainer, world, tmp_path):
    cfg = compose_cfg([f"trainer={trainer}", f"world={world}", "trainer.num_nodes=2",
                       "trainer.accumulate_grad_batches=4"], tmp_path)
    t = resolved(cfg)["trainer"]
    assert t["_target_"] == "lightning.Trainer" and t["accelerator"] == "gpu" and t["precision"] == "bf16-mixed"
    assert t["num_nodes"] == 2 and t["accumulate_grad_batches"] == 4 and "devices" in t


def test_world_full_with_the_papers_batch_on_8_gpus(tmp_path):
    cfg = compose_cfg(["world=full", "trainer=fsdp", "trainer.devices=8", "trainer.accumulate_grad_batches=2"],
                      tmp_path)
    assert cfg.stages.distill.batch_size == 128
    assert micro_batch_size(cfg.stages.distill.batch_size, cfg.trainer.devices, cfg.trainer.accumulate_grad_batches) == 8
    with pytest.raises(ValueError, match="multiple of devices × num_nodes × accumulate_grad_batches"):
        micro_batch_size(128, 6, 1)


def test_ddp_strategy_instantiates_and_a_cpu_ddp_trainer_builds(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    cfg = compose_cfg(["trainer=ddp"], tmp_path)
    assert isinstance(instantiate(cfg.trainer.strategy), DDPStrategy)
    cfg = compose_cfg(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                       "trainer.strategy.start_method=spawn"], tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, max_steps=1)
    assert trainer.num_devices == 2 and isinstance(trainer.strategy, DDPStrategy)


@pytest.mark.parametrize("family", FAMILIES)
def test_fsdp_wraps_the_familys_decoder_layer(family, tmp_path):
    from lightning.pytorch.strategies import FSDPStrategy

    cfg = compose_cfg(["trainer=fsdp", f"model={family}", "trainer.strategy.activation_checkpointing=true"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    layer = get_class(cfg.model.decoder_layer)
    assert isinstance(strategy, FSDPStrategy) and strategy._state_dict_type == "full"
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {layer}
    assert layer.__name__.endswith("DecoderLayer")


def test_fsdp_names_a_missing_class_clearly(tmp_path):
    cfg = compose_cfg(["trainer=fsdp", "model.decoder_layer=transformers.NoSuchLayer"], tmp_path)
    with pytest.raises(Exception, match="NoSuchLayer"):
        instantiate(cfg.trainer.strategy)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_strategies(stage, tmp_path, monkeypatch):
    cfg = compose_cfg([f"trainer=deepspeed_zero{stage}"], tmp_path)
    assert cfg.trainer.strategy.stage == stage
    if not HAS_DEEPSPEED:
        import distill.strategies as S

        with pytest.raises(ImportError, match=r'pip install -e "\.\[deepspeed\]"'):
            S.deepspeed(stage)
        pytest.skip("deepspeed not installed (the `deepspeed` extra): composed only")
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy.config["zero_optimization"]["stage"] == stage
    from distill.strategies import shards_parameters

    assert shards_parameters(strategy) is (stage == 3)


def test_follower_rank_reads_the_launchers_variables(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert not follower_rank()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not follower_rank()
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert follower_rank()


# ------------------------------------------------------------------ launchers
@pytest.mark.filterwarnings(SCHEMA_NOTE)
@pytest.mark.parametrize("launcher,target", [("submitit_slurm", "SlurmLauncher"), ("submitit_local", "LocalLauncher")])
def test_launchers_compose(launcher, target, tmp_path):
    cfg = compose_cfg([f"hydra/launcher={launcher}"], tmp_path)
    lc = cfg.hydra.launcher
    assert lc._target_.endswith(target) and lc.nodes == 1 and lc.timeout_min > 0
    if launcher == "submitit_slurm":
        assert lc.gpus_per_node == lc.tasks_per_node == 8 and lc.max_num_timeout > 0


def _fake_srun(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.filterwarnings(SCHEMA_NOTE)
@pytest.mark.skipif(not HAS_SUBMITIT, reason="hydra-submitit-launcher not installed (the `slurm` extra)")
@pytest.mark.parametrize("launcher,cluster", [("submitit_slurm", "slurm"), ("submitit_local", "local")])
def test_launcher_settings_are_accepted_by_submitit(launcher, cluster, tmp_path, monkeypatch):
    """The plugin's own steps: schema keys, then submitit's executor parameters (an sbatch script for SLURM)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher import config as plugin

    cfg = compose_cfg([f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu"] if cluster == "slurm"
                      else [f"hydra/launcher={launcher}"], tmp_path)
    with open_dict(cfg):
        cfg.hydra.sweep.dir = str(tmp_path / "sweep")
        cfg.hydra.job.name = "run"
    schema = plugin.SlurmQueueConf if cluster == "slurm" else plugin.LocalQueueConf
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert set(params) == set(OmegaConf.structured(schema).keys())  # every key, none unknown
    params.pop("_target_")
    init = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    if cluster == "slurm":
        _fake_srun(tmp_path, monkeypatch)
    executor = submitit.AutoExecutor(cluster=cluster, **init)
    base = set(OmegaConf.structured(plugin.BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"{cluster}_{k}": v for k, v in params.items()})
    if cluster == "slurm":
        script = executor._executor._make_submission_file_text("python run.py", "0")
        for line in ("--partition=gpu", "--gpus-per-node=8", "--ntasks-per-node=8", "--time=1440", "--nodes=1"):
            assert line in script


def test_paths_artifacts_follows_distill_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path / "shared"))
    cfg = compose_cfg([], None)
    assert OmegaConf.select(cfg, "paths.artifacts") == str(tmp_path / "shared" / "artifacts")
