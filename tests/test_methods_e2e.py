"""Every distillation method trains end to end on the shrunken toy world, sharing artifacts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import open_dict

from distill.artifacts import ArtifactStore
from distill.methods.plugin import lookup
from distill.pipeline import run
from distill.stages import Pipeline

METHODS = ["dckd", "adpa", "adpa_plus", "pad_lppd", "pad_lvpd"]


def test_all_methods_share_teachers_and_caches(tiny_cfg):
    built: dict[str, list[str]] = {}
    for method in METHODS:
        extra = ["method.n_samples=3", "method.n_keep=3"] if method.startswith("pad") else []
        cfg = tiny_cfg(f"method={method}", "logger=none", *extra)
        store = ArtifactStore(cfg.paths.artifacts)
        pipe = Pipeline(cfg, store)
        pipe.distill()
        built[method] = sorted({s for s, _, r in store.events if not r})
    assert "dpo_teacher" in built["dckd"] and "teacher_cache" in built["dckd"]
    # adpa builds its own samples and on-policy cache but reuses the teachers built for dckd
    assert "dpo_teacher" not in built["adpa"] and {"samples", "teacher_cache"} <= set(built["adpa"])
    # adpa_plus reuses the DCKD student (same artifact as method=dckd), samples from it
    assert built["adpa_plus"].count("distill") == 1 and "samples" in built["adpa_plus"]
    assert "pad_scores" in built["pad_lppd"]
    # LVPD reuses LPPD's samples and teacher scores: only its own training is new
    assert built["pad_lvpd"] == ["distill"]


def test_run_writes_a_result_for_a_distillation_method(tiny_cfg):
    cfg = tiny_cfg("method=adpa", "logger=none")
    run(cfg)
    rec = json.loads(next(Path(cfg.paths.results).glob("adpa-gemma-s0-*.json")).read_text())
    assert rec["hparams"]["gamma"] == cfg.method.gamma and "toy/win_rate" in rec["scores"]


def test_pad_with_a_teacher_of_another_tokenizer(tiny_cfg):
    cfg = tiny_cfg("method=pad", "logger=none", "method.n_samples=3", "method.n_keep=2",
                   "+model.teacher.tokenizer={kind: bpe, vocab_size: 48}")
    pipe = Pipeline(cfg)
    t_tok, s_tok = pipe.tokenizer("teacher"), pipe.tokenizer("student")
    assert t_tok.get_vocab() != s_tok.get_vocab()
    art = pipe.distill()
    assert (art.path / "model").exists()
    inputs = lookup(cfg.method).inputs(pipe, cfg.method)  # what the PAD plugin declares it reads
    scores = [json.loads(l) for l in (inputs["scores"].path / "scores.jsonl").read_text().splitlines()]
    assert all(len(s["scores"]) == 2 and all(v < 0 for v in s["scores"]) for s in scores)


@pytest.mark.parametrize("method", ["dckd", "adpa"])
def test_token_level_methods_refuse_another_tokenizer(tiny_cfg, method):
    cfg = tiny_cfg(f"method={method}", "logger=none", "+model.teacher.tokenizer={kind: bpe, vocab_size: 48}")
    with pytest.raises(ValueError, match="share a vocabulary"):
        Pipeline(cfg).distill()
