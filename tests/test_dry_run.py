"""``dry_run=true`` prints the plan of a run (stages, keys, status, tokens, GPU memory) and builds
and downloads nothing; its keys are the keys the run computes."""
from __future__ import annotations

import math

import pytest

from conftest import compose_cfg, no_downloads
from distill.pipeline import run
from distill.plan import ASSUMPTIONS, base_checkpoint_problems, dry_run, n_params, plan, seconds, \
    train_bytes_per_gpu, walk
from distill.stages import Pipeline


def test_toy_plan_keys_match_the_run_and_report_what_exists(tiny_cfg, capsys):
    cfg = tiny_cfg("method=dckd", "logger=none")
    before = walk(cfg)
    assert [r["stage"] for r in before][:2] == ["data", "sft_student"]
    assert not any(r["exists"] for r in before)
    stages = [r["stage"] for r in before]
    assert stages.index("teacher_cache") < stages.index("distill") < stages.index("generate")

    art = Pipeline(cfg).distill()
    after = {(r["stage"], r["key"]): r["exists"] for r in walk(cfg)}
    assert after[("distill", art.key)] is True
    pipe = Pipeline(cfg)
    assert after[("teacher_cache", pipe.topk_cache([pipe.dpo_teacher()], "pairs", cfg.method.top_k).key)] is True
    assert not any(e for (s, _), e in after.items() if s == "generate")  # not run yet

    assert math.isnan(dry_run(cfg))
    out = capsys.readouterr().out
    assert art.key in out and "exists" in out and "GPU memory" in out and "tokens" in out


@pytest.mark.parametrize("method", ["pad", "adpa_plus", "dpo"])
def test_full_world_dry_run_downloads_nothing(method, capsys, monkeypatch, tmp_path):
    no_downloads(monkeypatch)
    cfg = compose_cfg(["world=full", "model=gemma", f"method={method}", "trainer=fsdp", "trainer.devices=8",
                       "logger=none", "dry_run=true"], tmp_path)
    assert math.isnan(run(cfg))
    out = capsys.readouterr().out
    # DPO's student reads no teacher, and the benchmarks' default reference is the SFT student
    assert "dry run" in out and "distill" in out and ("dpo_teacher" in out) == (method != "dpo")
    assert not any(r["stage"] == "generate" for r in walk(cfg))  # scored by the benchmarks: no oracle answers
    if method == "adpa_plus":  # its teacher caches' keys include the hub tokenizer's fingerprint
        assert "key needs the tokenizer" in out
    assert not (tmp_path / "artifacts").exists()


def test_memory_formula():
    n, w = 9.24e9, 2
    assert train_bytes_per_gpu(n, w, "none", 8) == 4 * w * n              # DDP: weights, grads, AdamW m, v
    assert train_bytes_per_gpu(n, w, "full", 8) == 4 * w * n / 8          # FSDP / ZeRO-3
    assert train_bytes_per_gpu(n, w, "zero2", 8) == w * n + 3 * w * n / 8


def test_parameter_counts_toy_and_hub(tmp_path):
    toy = n_params(compose_cfg(["model=llama"], tmp_path))
    assert 1e3 < toy["student"] < toy["teacher"] < 1e7
    full = n_params(compose_cfg(["world=full", "model=gemma"], tmp_path))
    assert full == {"teacher": 9.24e9, "student": 2.61e9}


def test_time_estimate_is_flops_at_the_assumed_throughput(monkeypatch, tmp_path):
    """A trained token costs 6·N FLOPs, spread over the data-parallel GPUs at peak × utilisation;
    the assumed throughput can be overridden (``+plan.*``)."""
    no_downloads(monkeypatch)
    assert seconds({"train": 6e18, "generate": 1e18}, 4, ASSUMPTIONS) == pytest.approx(
        6e18 / (4 * 989e12 * 0.40) + 1e18 / (4 * 989e12 * 0.05))
    overrides = ["world=full", "model=danube", "method=dckd", "trainer=fsdp", "trainer.devices=8",
                 "stages.sft_teacher.steps=219", "stages.sft_student.steps=219"]
    rows, total = plan(compose_cfg(overrides, tmp_path))
    sft = next(r for r in rows if r["stage"] == "sft_teacher")["est"]
    assert sft["flops"] == {"train": pytest.approx(6 * 7.24e9 * 219 * 128 * 2048)}
    assert sft["gpus"] == 8 and sft["seconds"] == pytest.approx(sft["flops"]["train"] / (8 * 989e12 * 0.40))
    assert sft["epochs"] == pytest.approx(219 * 128 / (9500 * 0.98))
    a100 = plan(compose_cfg([*overrides, "+plan.peak_tflops=312"], tmp_path))[1]
    assert a100["seconds"] == pytest.approx(total["seconds"] * 989 / 312)
    assert a100["assumptions"]["peak_tflops"] == 312


def test_base_checkpoints_without_their_sft_stage_are_reported(capsys, monkeypatch, tmp_path):
    """``world=full model=danube`` (Mistral-7B-v0.1 and h2o-danube2-1.8b-base, both base checkpoints)
    with the world's steps 0 would distill models that were never instruction-tuned."""
    no_downloads(monkeypatch)
    cfg = compose_cfg(["world=full", "model=danube", "method=adpa_plus", "logger=none", "dry_run=true"], tmp_path)
    problems = base_checkpoint_problems(cfg)
    assert len(problems) == 2
    assert problems[0].startswith("stages.sft_teacher.steps=0: model.teacher.hub_id=mistralai/Mistral-7B-v0.1")
    assert problems[1].startswith("stages.sft_student.steps=0: model.student.hub_id=h2oai/h2o-danube2-1.8b-base")
    assert math.isnan(run(cfg))
    out = capsys.readouterr().out
    assert out.count("a base checkpoint without its SFT stage") == 2
    fixed = compose_cfg(["world=full", "model=danube", "stages.sft_teacher.steps=10", "stages.sft_student.steps=10"],
                        tmp_path)
    assert base_checkpoint_problems(fixed) == []
    assert base_checkpoint_problems(compose_cfg(["world=full", "model=gemma"], tmp_path)) == []  # *-it: as is
    assert base_checkpoint_problems(compose_cfg(["model=danube"], tmp_path)) == []  # toy world: no checkpoints


def test_benchmarks_are_planned_with_their_answer_lengths(monkeypatch, tmp_path):
    no_downloads(monkeypatch)
    cfg = compose_cfg(["world=full", "model=gemma", "method=dpo", "eval=all", "judge=openai"], tmp_path)
    rows = {r["key"]: r["est"] for r in plan(cfg)[0] if r["stage"] == "benchmark"}
    assert set(rows) == set(cfg.eval.benchmarks)
    n_models = 1 + len(cfg.eval.benchmark_references)
    assert rows["arena_hard"]["tokens"] == 500 * cfg.eval.arena_hard.max_new_tokens * n_models
    assert rows["alpaca_eval2"]["tokens"] == 805 * cfg.eval.alpaca_eval2.max_new_tokens * n_models
    assert rows["open_llm"]["tokens"] is None  # lm-eval's log-likelihoods are not estimated
