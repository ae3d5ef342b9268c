"""distill.validate: every composed config is checked before anything is built; each problem names
the key, the value, the allowed range and the fix."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import CONF, compose_cfg
from distill.validate import ConfigError, validate


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))


def problems(*overrides: str, **kw) -> str:
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(list(overrides)), gpu_available=True, **kw)
    return str(e.value)


@pytest.mark.parametrize("group", ["method", "model", "data", "trainer", "logger", "eval", "judge", "experiment"])
def test_every_shipped_option_validates(group, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # a judge that needs a key finds one
    for opt in options(group):
        assert validate(compose_cfg([f"{group}={opt}"]), gpu_available=True) == [], opt


@pytest.mark.parametrize("overrides,expected", [
    (["method=adpa", "method.gamma=-1"], "method.gamma=-1: must be >= 0 (ADPA's advantage weight"),
    (["method=dckd", "method.alpha=-0.5"], "method.alpha=-0.5: must be >= 0 (DCKD's KL weight"),
    (["method=dpo", "method.beta=0"], "method.beta=0: must be > 0"),
    (["method=pad", "method.beta=-3"], "method.beta=-3: must be > 0"),
    (["method=pad", "method.temperature=0"], "method.temperature=0: must be > 0"),
    (["method=pad", "method.top_p=1.5"], "method.top_p=1.5: must be in (0, 1]"),
    (["method=pad", "method.top_p=0"], "method.top_p=0: must be in (0, 1]"),
    (["method=adpa", "method.top_k=0"], "method.top_k=0: must be an integer >= 1"),
    (["method=dckd", "method.top_k=2.5"], "method.top_k=2.5: must be an integer >= 1"),
    (["method=pad", "method.n_keep=1"], "method.n_keep=1: must be an integer >= 2"),
    (["method=pad", "method.n_keep=6"], "method.n_keep=6: must be <= method.n_samples=5"),
    (["method=pad", "method.n_keep=8", "method.n_samples=10"], "method.n_keep=8: must be <= 7 for LPPD"),
    (["method=pad", "method.calibration_lambda=1.5"], "method.calibration_lambda=1.5: must be in [0, 1]"),
    (["method=adpa_plus", "method.dckd.alpha=-1"], "method.dckd.alpha=-1: must be >= 0"),
    (["method=dpo", "method.beta=abc"], "method.beta='abc': must be > 0"),
    (["stages.distill.lr=0"], "stages.distill.lr=0: must be in (0, 1]"),
    (["stages.sft_teacher.batch_size=0"], "stages.sft_teacher.batch_size=0: must be an integer >= 1"),
    (["stages.distill.steps=-1"], "stages.distill.steps=-1: must be an integer >= 0"),
    (["checkpoint_every=0"], "checkpoint_every=0: must be an integer >= 1"),
    (["eval.n_prompts=0"], "eval.n_prompts=0: must be an integer >= 1"),
])
def test_out_of_range_values_name_key_value_range_and_fix(overrides, expected):
    msg = problems(*overrides)
    assert expected in msg
    key = expected.split("=", 1)[0]
    assert f"set {key}=" in msg  # the fix


def test_lvpd_takes_more_than_seven_responses():
    assert validate(compose_cfg(["method=pad_lvpd", "method.n_keep=8", "method.n_samples=8"]),
                    gpu_available=True) == []


def test_all_problems_are_reported_at_once():
    msg = problems("method=pad", "method.beta=0", "method.top_p=2", "checkpoint_every=0")
    assert msg.startswith("invalid configuration (3 problems):")
    assert all(k in msg for k in ("method.beta=0", "method.top_p=2", "checkpoint_every=0"))


@pytest.mark.parametrize("method", ["dckd", "adpa", "adpa_plus"])
@pytest.mark.parametrize("override,what", [
    ("+model.teacher.tokenizer={kind: bpe, vocab_size: 48}", "tokenizer: teacher {'kind': 'bpe', 'vocab_size': 48} "
                                                             "vs student {'kind': 'word'}"),
    ("+model.student.chat_style=llama", "chat template: teacher 'gemma' vs student 'llama'"),
])
def test_token_level_methods_need_one_tokenizer_and_template(method, override, what):
    msg = problems(f"method={method}", override)
    assert f"method={method}:" in msg and what in msg
    assert "google/gemma-2-9b-it" in msg and "google/gemma-2-2b-it" in msg  # both models named
    assert "use method=pad" in msg  # and the fix


def test_pad_and_matching_overrides_pass():
    teacher_bpe = "+model.teacher.tokenizer={kind: bpe, vocab_size: 48}"
    assert validate(compose_cfg(["method=pad", teacher_bpe]), gpu_available=True) == []
    both = [teacher_bpe, "+model.student.tokenizer={kind: bpe, vocab_size: 48}"]
    assert validate(compose_cfg(["method=dckd", *both]), gpu_available=True) == []


def test_a_judge_key_variable_that_is_unset_is_named(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    msg = problems("judge=openai")
    assert "judge.api_key_env=OPENAI_API_KEY" in msg and "export OPENAI_API_KEY=" in msg
    monkeypatch.setenv("DISTILL_TEST_JUDGE_KEY", "sk-test")
    assert validate(compose_cfg(["judge=openai", "judge.api_key_env=DISTILL_TEST_JUDGE_KEY"]), gpu_available=True) == []
    assert validate(compose_cfg(["judge=oracle"]), gpu_available=True) == []  # no key needed


def test_a_key_written_into_the_config_is_refused_without_echoing_it():
    msg = problems("+judge.api_key=sk-live-1234567890")
    assert "judge.api_key=<redacted>" in msg and "sk-live-1234567890" not in msg
    assert "judge.api_key_env" in msg


def test_full_world_without_a_gpu_stops_before_any_download_and_a_dry_run_warns(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["world=full"]), gpu_available=False)
    msg = str(e.value)
    assert "trainer.accelerator=gpu: no CUDA GPU" in msg and "world=toy" in msg and "google/gemma-2-9b-it" in msg
    cfg = compose_cfg(["world=full", "dry_run=true"])
    with caplog.at_level(logging.WARNING, logger="distill.validate"):
        warnings = validate(cfg, gpu_available=False)
    assert len(warnings) == 1 and "no CUDA GPU" in warnings[0] and warnings[0] in caplog.text
    assert validate(compose_cfg(["world=full"]), gpu_available=True) == []
    assert "world=full on a machine without a CUDA GPU" in validate(
        compose_cfg(["world=full", "trainer=cpu"]), gpu_available=False)[0]  # CPUs by choice: a warning


def test_run_validates_before_building_anything(tmp_path):
    from distill.pipeline import run

    cfg = compose_cfg(["method=adpa", "method.gamma=-1", "logger=none"], tmp_path)
    with pytest.raises(ConfigError, match="method.gamma=-1"):
        run(cfg)
    assert not (tmp_path / "artifacts").exists()
