"""``dry_run=true`` prints the plan of a run (stages, keys, status, tokens, GPU memory) and builds
and downloads nothing; its keys are the keys the run computes."""
from __future__ import annotations

import math

import pytest

from conftest import compose_cfg
from distill.pipeline import run
from distill.plan import dry_run, n_params, train_bytes_per_gpu, walk
from distill.stages import Pipeline


def _no_downloads(monkeypatch):
    import datasets
    import transformers

    def refuse(*a, **k):
        raise AssertionError("the dry run tried to download or load a model / data set")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


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
    assert after[("teacher_cache", Pipeline(cfg).pair_cache(cfg.method.top_k).key)] is True
    assert not any(e for (s, _), e in after.items() if s == "generate")  # not run yet

    assert math.isnan(dry_run(cfg))
    out = capsys.readouterr().out
    assert art.key in out and "exists" in out and "GPU memory" in out and "tokens" in out


@pytest.mark.parametrize("method", ["pad", "adpa_plus", "dpo"])
def test_full_world_dry_run_downloads_nothing(method, capsys, monkeypatch, tmp_path):
    _no_downloads(monkeypatch)
    cfg = compose_cfg(["world=full", "model=gemma", f"method={method}", "trainer=fsdp", "trainer.devices=8",
                       "logger=none", "dry_run=true"], tmp_path)
    assert math.isnan(run(cfg))
    out = capsys.readouterr().out
    assert "dry run" in out and "dpo_teacher" in out and "distill" in out
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
