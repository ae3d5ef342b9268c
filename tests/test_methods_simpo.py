"""SimPO as a registered plugin: its module against the formula per sequence in float64, its
validation, its run in the tiny toy world, and its place in the report with its own γ."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from distill.data import Collator
from distill.methods.plugin import get, lookup
from distill.methods.simpo import SimPOModule
from distill.validate import ConfigError, validate
from test_methods_modules import PAD_ID, TOL, model, seq, token_logprobs  # noqa: F401 (model: a fixture)
from test_report import _run


def test_module_matches_the_formula_per_sequence(model):  # noqa: F811
    rng = np.random.default_rng(3)
    items = [{"seqs": [seq(rng, 3, 4), seq(rng, 5, 2)]}, {"seqs": [seq(rng, 4, 6), seq(rng, 2, 3)]},
             {"seqs": [seq(rng, 6, 3), seq(rng, 3, 7)]}]
    beta, gamma = 2.5, 0.7
    module = SimPOModule(model, lambda params: None, beta=beta, gamma=gamma)
    with torch.no_grad():
        got, metrics = module.model_step(Collator(PAD_ID)(items))
    want = 0.0
    for it in items:
        r = []
        for s in it["seqs"]:
            lp, toks = token_logprobs(model, s)
            r.append(beta * sum(lp[j, t] for j, t in enumerate(toks)) / len(toks))
        want += -math.log(1 / (1 + math.exp(-(r[0] - r[1] - gamma))))
    assert float(got) == pytest.approx(want / len(items), **TOL)
    assert set(metrics) == {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin"}


def test_module_refuses_bad_hyperparameters(model):  # noqa: F811
    with pytest.raises(ValueError, match="method.beta must be > 0"):
        SimPOModule(model, None, beta=0.0)
    with pytest.raises(ValueError, match="method.gamma must be >= 0"):
        SimPOModule(model, None, gamma=-1.0)


def test_config_is_the_plugins_typed_config_with_its_own_gamma():
    cfg = compose_cfg(["method=simpo"])
    assert lookup(cfg.method) is get("simpo") and cfg.method.beta == 10.0 and cfg.method.gamma == 5.0
    assert validate(cfg, gpu_available=True) == []
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["method=simpo", "method.gamma=-1"]), gpu_available=True)
    msg = str(e.value)
    assert "method.gamma=-1: must be >= 0 (SimPO's target reward margin" in msg and "ADPA" not in msg
    h = get("simpo").hparams()["gamma"]
    assert (h.symbol, h.axis) == ("γ", "γ, SimPO target margin (dimensionless)")


def test_simpo_reads_no_teacher_and_no_reference(tmp_path):
    from distill.artifacts import KeyStore
    from distill.stages import Pipeline

    cfg = compose_cfg(["method=simpo"], tmp_path)
    pipe = Pipeline(cfg, KeyStore(cfg.paths.artifacts))
    assert {i.split("/")[0] for i in pipe.recipe_inputs(cfg.method)} == {"data", "sft_student"}


def test_report_places_simpo_beside_the_others_with_its_own_gamma(tmp_path):
    from eval import report as R

    recs = [_run("dpo", 0, hparams={"beta": 0.1}, win=60.0),
            _run("adpa", 0, hparams={"gamma": 0.1, "top_k": 5, "advantage_clamp": False}, win=66.0)]
    recs += [_run("simpo", s, hparams={"beta": 10.0, "gamma": g}, win=55 + g + s) for g in (1.0, 5.0, 10.0)
             for s in (0, 1)]
    paths = R.write_report(recs, tmp_path, metrics=["toy/win_rate"])
    md = paths["markdown"].read_text()
    assert "student · SimPO (γ=1)" in md and "student · SimPO (γ=10)" in md and "student · ADPA" in md
    assert md.index("student · DPO") < md.index("student · ADPA") < md.index("student · SimPO (γ=1)")
    svg = paths["plot/sensitivity_simpo_gamma_toy_win_rate.svg"].read_text()
    assert "SimPO target margin" in svg and "ADPA advantage weight" not in svg


@pytest.mark.slow
def test_simpo_trains_in_the_tiny_world_and_writes_a_result(tiny_cfg):
    from distill.artifacts import ArtifactStore
    from distill.pipeline import run
    from distill.stages import Pipeline

    cfg = tiny_cfg("method=simpo", "logger=none")
    store = ArtifactStore(cfg.paths.artifacts)
    art = Pipeline(cfg, store).distill()
    assert (art.path / "model").exists()
    built = {s for s, _, r in store.events if not r}
    assert "distill" in built and not built & {"dpo_teacher", "teacher_cache", "samples", "pad_scores"}
    run(cfg)
    rec = json.loads(next(Path(cfg.paths.results).glob("simpo-gemma-s0-*.json")).read_text())
    assert rec["method"] == "simpo" and rec["hparams"]["gamma"] == 5.0 and "toy/win_rate" in rec["scores"]
