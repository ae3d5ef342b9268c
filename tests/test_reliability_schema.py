"""Typed configs: every bad value is refused when the config is validated (before any work),
naming the key, the value, the valid range and the fix."""
from __future__ import annotations

import pytest

from conftest import compose_cfg
from distill.validate import ConfigError, validate


def refused(*overrides: str, gpu: bool = True) -> str:
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(list(overrides)), gpu_available=gpu)
    return str(e.value)


@pytest.mark.parametrize("overrides,expected,fix", [
    (["seed=abc"], "seed='abc': must be an integer >= 0", "set seed=0"),
    (["seed=-1"], "seed=-1: must be an integer >= 0", "set seed=0"),
    (["data.sizes.sft=0"], "data.sizes.sft=0: must be an integer >= 1", "set data.sizes.sft=8000"),
    (["data.sizes.eval=0"], "data.sizes.eval=0: must be an integer >= 1", "set data.sizes.eval=300"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1: must be in [0, 1]", "set optimizer.weight_decay=0.0"),
    (["trainer.devices=0"], "trainer.devices=0: must be an integer >= 1", "set trainer.devices=1"),
    (["model.student.toy.hidden_size=31"], "model.student.toy.hidden_size=31: must be a multiple of "
     "model.student.toy.num_attention_heads=4", "set model.student.toy.hidden_size=28"),
    (["model.teacher.toy.num_key_value_heads=3"], "model.teacher.toy.num_key_value_heads=3: must divide",
     "set model.teacher.toy.num_key_value_heads=4"),
    (["eval.n_prompts=100000"], "eval.n_prompts=100000: must be <= data.sizes.eval=300", "set eval.n_prompts=300"),
    (["stages.distill.lr=1e9"], "stages.distill.lr=1000000000.0: must be in (0, 1]", "set stages.distill.lr=3e-4"),
    (["scheduler.warmup_ratio=5"], "scheduler.warmup_ratio=5: must be in [0, 1]", "set scheduler.warmup_ratio=0.1"),
    (["generation.backend=foo"], "generation.backend='foo': must be one of hf, vllm", "set generation.backend=hf"),
    (["trainer.precision=17"], "trainer.precision=17: must be one of", "set trainer.precision=32-true"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1: must be > 0", "set trainer.gradient_clip_val"),
    (["world.dtype=float8"], "world.dtype='float8': must be one of float32", "set world.dtype=float32"),
    (["data.task.min_len=9"], "data.task.min_len=9: must be <= data.task.max_len=8", "set data.task.min_len=8"),
    (["data.task.w_correct=0.7"], "data.task.w_correct=0.7: must sum to 1", "set data.task.w_correct=0.9"),
    (["data.task.pair_correct_share=1", "data.task.pair_format_share=0"],
     "data.task.pair_correct_share=1: with data.task.pair_format_share=0 every preference pair",
     "set data.task.pair_correct_share=0.5"),
    (["method=dckd", "method.teacher_signal=shuffled"], "method.teacher_signal='shuffled': must be one of teacher, "
     "none, flipped", "set method.teacher_signal=teacher"),
    (["stages.distill.batch_size=30", "trainer.accumulate_grad_batches=4"],
     "stages.distill.batch_size=30: must be a multiple of", "set stages.distill.batch_size=28"),
    (["+stages.distill.lrr=0.1"], "stages.distill.lrr: unknown key", "remove stages.distill.lrr"),
    (["judge.strong_margin=-1"], "judge.strong_margin=-1: must be >= 0", "set judge.strong_margin=0"),
    (["judge=openai", "judge.max_concurrency=0"], "judge.max_concurrency=0: must be an integer >= 1", "set judge."),
    (["judge=openai", "judge.timeout_s=-5"], "judge.timeout_s=-5: must be > 0", "set judge."),
    (["judge=openai", "judge.max_failure_share=2"], "judge.max_failure_share=2: must be in [0, 1]", "set judge."),
    (["+judge.temperatur=0"], "judge.temperatur: unknown option of eval.judges.oracle.OracleJudge", "remove judge."),
    (["+trainer.max_epoch=3"], "trainer.max_epoch: unknown option of lightning.Trainer", "remove trainer.max_epoch"),
])
def test_bad_values_are_refused_naming_key_value_range_and_fix(overrides, expected, fix, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    msg = refused(*overrides)
    assert expected in msg and fix in msg, msg


def test_a_gpu_trainer_or_vllm_without_cuda_is_an_error():
    assert "trainer.accelerator=gpu: no CUDA GPU on this machine" in refused("trainer=gpu", gpu=False)
    assert "generation.backend='vllm': vLLM needs a CUDA GPU" in refused("generation.backend=vllm", gpu=False)
    assert validate(compose_cfg(["trainer=gpu"]), gpu_available=True) == []


def test_every_problem_at_once():
    msg = refused("seed=abc", "data.sizes.sft=0", "scheduler.warmup_ratio=5")
    assert msg.startswith("invalid configuration (3 problems)")


def test_the_default_configs_pass():
    for m in ("dpo", "dckd", "adpa", "adpa_plus", "pad", "pad_lvpd"):
        for fam in ("gemma", "llama", "qwen", "danube"):
            assert validate(compose_cfg([f"method={m}", f"model={fam}"]), gpu_available=False) == []
