"""The full world's defaults, and the metric every search and sweep optimises exists in its world."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import CONF, ROOT, compose_cfg
from distill.pipeline import metric_problem

SEARCHES = sorted((Path(CONF) / "hparams_search").glob("*.yaml"))
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_full_world_defaults_are_the_benchmarks_with_an_openai_judge(tmp_path):
    cfg = compose_cfg(["world=full"], tmp_path)
    assert cfg.world.source == "hub" and cfg.trainer.accelerator == "gpu"
    assert list(cfg.eval.benchmarks) == ["alpaca_eval2", "arena_hard", "mt_bench", "open_llm"]
    assert cfg.judge.name == "openai" and cfg.judge.api_key_env == "OPENAI_API_KEY"
    assert cfg.optimized_metric == "eval/alpaca_eval2/win_rate" and metric_problem(cfg) is None
    assert min(cfg.eval.alpaca_eval2.max_new_tokens, cfg.eval.arena_hard.max_new_tokens,
               cfg.eval.mt_bench.max_new_tokens, cfg.stages.max_new_tokens) >= 1024
    # the hub ids and data paths stay overridable under their keys
    cfg = compose_cfg(["world=full", "model.teacher.hub_id=/disk/t", "data.sft.path=/disk/deita"], tmp_path)
    assert cfg.model.teacher.hub_id == "/disk/t" and cfg.data.sft.path == "/disk/deita"


def test_metric_problem_names_the_fix(tmp_path):
    cfg = compose_cfg(["world=full", "optimized_metric=toy/win_rate"], tmp_path)
    assert "optimized_metric=eval/alpaca_eval2/win_rate" in metric_problem(cfg)
    cfg = compose_cfg(["world=full", "eval.benchmarks=[mt_bench]"], tmp_path)
    assert "alpaca_eval2" in metric_problem(cfg)
    assert metric_problem(compose_cfg([], tmp_path)) is None
    assert "eval.benchmarks" in metric_problem(compose_cfg(["optimized_metric=eval/mt_bench/score"], tmp_path))
    assert metric_problem(compose_cfg(["eval=all", "optimized_metric=eval/mt_bench/score"], tmp_path)) is None


@pytest.mark.parametrize("world", ["toy", "full", "rehearsal"])
@pytest.mark.parametrize("search", [p.stem for p in SEARCHES])
def test_hparams_searches_optimise_a_metric_of_their_world(search, world, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_cfg([f"world={world}", f"hparams_search={search}"], tmp_path)
    assert metric_problem(cfg) is None, metric_problem(cfg)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_files_optimise_a_metric_of_their_world(path, tmp_path):
    spec = yaml.safe_load(path.read_text())
    fixed = [f"{k}={v['value'] if 'value' in v else v['values'][0]}" for k, v in spec["parameters"].items()
             if "value" in v or "values" in v]   # (distributions: the world does not depend on them)
    cfg = compose_cfg([*fixed, f"optimized_metric={spec['metric']['name']}"], tmp_path)
    assert metric_problem(cfg) is None, f"{path.name}: {metric_problem(cfg)}"


def test_gpu_smoke_without_cuda_says_so_and_exits_cleanly(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the smoke run itself is not a unit test")
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "bench" / "gpu_smoke.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
