"""On-policy GKD as a registered plugin: its module against the formula per sequence in float64
(dataset responses and its own on-policy samples), the online teacher, its validation, its run in
the tiny toy world, and its place in the report beside the other methods with its own β and λ."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose_cfg
from distill.data import IGNORE, Collator
from distill.methods.gkd import GKDModule
from distill.methods.plugin import get, lookup
from distill.validate import ConfigError, validate
from test_methods_modules import PAD_ID, TOL, model, seq, token_logprobs  # noqa: F401 (model: a fixture)
from test_report import _run


@pytest.fixture(scope="module")
def teacher(model):  # noqa: F811
    t = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(torch.randn_like(p))
    return t.eval()


def _jsd(p_t: np.ndarray, p_s: np.ndarray, beta: float) -> float:
    if beta == 0:
        return float((p_t * np.log(p_t / p_s)).sum())
    if beta == 1:
        return float((p_s * np.log(p_s / p_t)).sum())
    m = beta * p_t + (1 - beta) * p_s
    return float(beta * (p_t * np.log(p_t / m)).sum() + (1 - beta) * (p_s * np.log(p_s / m)).sum())


def _reference(model, teacher, seqs, beta):  # noqa: F811
    """Each sequence alone through both models, float64, JSD per response token, mean over all tokens."""
    total, n = 0.0, 0
    for s in seqs:
        ls, _ = token_logprobs(model, s)
        lt, _ = token_logprobs(teacher, s)
        for j in range(len(ls)):
            total += _jsd(np.exp(lt[j]), np.exp(ls[j]), beta)
            n += 1
    return total / n


def _module(model, teacher, **kw):  # noqa: F811
    return GKDModule(model, lambda params: None, teacher=teacher, pad_id=PAD_ID, eos_id=2, **kw)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_dataset_batches_match_the_formula_per_sequence(model, teacher, beta):  # noqa: F811
    rng = np.random.default_rng(5)
    items = [{"seqs": [seq(rng, p, r)]} for p, r in ((3, 4), (5, 2), (2, 6))]
    module = _module(model, teacher, beta=beta, lmbda=0.0)
    with torch.no_grad():
        got, metrics = module.model_step(Collator(PAD_ID)(items))
    assert float(got) == pytest.approx(_reference(model, teacher, [it["seqs"][0] for it in items], beta), **TOL)
    assert float(metrics["on_policy"]) == 0.0


def test_on_policy_batches_are_the_students_own_samples_scored_by_the_teacher(model, teacher):  # noqa: F811
    rng = np.random.default_rng(6)
    items = [{"seqs": [seq(rng, p, r)]} for p, r in ((3, 4), (5, 2), (2, 6))]
    batch = Collator(PAD_ID)(items)
    module = _module(model, teacher, beta=0.5, lmbda=1.0, max_new_tokens=5, temperature=0.9)
    sampled = module.student_samples(batch)
    assert torch.equal(module.student_samples(batch)["input_ids"], sampled["input_ids"])  # fixed by (seed, step)
    new_seqs = []
    for i, it in enumerate(items):
        p = sum(1 for t in it["seqs"][0]["labels"] if t == IGNORE)
        row = sampled["input_ids"][i].tolist()
        labels = sampled["labels"][i].tolist()
        assert row[:p] == it["seqs"][0]["input_ids"][:p]  # the same prompt
        resp = [t for t in labels if t != IGNORE]
        assert 1 <= len(resp) <= 5 and (2 not in resp[:-1])  # at most max_new_tokens, stops at eos
        assert resp != it["seqs"][0]["input_ids"][p:]  # not the data's response
        new_seqs.append({"input_ids": row[:p + len(resp)], "labels": labels[:p + len(resp)]})
    with torch.no_grad():
        got, metrics = module.model_step(batch)
    assert float(metrics["on_policy"]) == 1.0
    assert float(got) == pytest.approx(_reference(model, teacher, new_seqs, 0.5), **TOL)


def test_the_coin_is_lambda_and_fixed_by_the_step(model, teacher, monkeypatch):  # noqa: F811
    module = _module(model, teacher, lmbda=0.3)
    monkeypatch.setattr(GKDModule, "global_step", property(lambda self: self._step))
    draws = []
    for step in range(2000):
        module._step = step
        draws.append(module.on_policy_step())
    assert abs(sum(draws) / len(draws) - 0.3) < 0.04
    module._step = 17
    assert module.on_policy_step() == draws[17]
    never = _module(model, teacher, lmbda=0.0)
    never._step = 0
    assert not any(never.on_policy_step() for never._step in range(200))


def test_the_online_teacher_is_frozen_and_not_a_hyperparameter(model, teacher):  # noqa: F811
    module = _module(model, copy.deepcopy(teacher))
    module.train()
    assert not module.teacher.training and all(not p.requires_grad for p in module.teacher.parameters())
    assert "teacher" not in module.hparams
    with pytest.raises(ValueError, match="needs the teacher"):
        GKDModule(model, None, teacher=None)
    with pytest.raises(ValueError, match=r"method.lmbda must be in \[0, 1\]"):
        _module(model, teacher, lmbda=2.0)


def test_config_validation_and_token_level_check():
    cfg = compose_cfg(["method=gkd"])
    assert lookup(cfg.method) is get("gkd") and validate(cfg, gpu_available=True) == []
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["method=gkd", "method.beta=1.5", "method.lmbda=-0.1"]), gpu_available=True)
    msg = str(e.value)
    assert "method.beta=1.5: must be in [0, 1] (GKD's JSD interpolation" in msg
    assert "method.lmbda=-0.1: must be in [0, 1] (GKD's share of batches" in msg
    with pytest.raises(ConfigError, match="method=gkd: compares the teacher's and the student's token"):
        validate(compose_cfg(["method=gkd", "+model.teacher.tokenizer={kind: bpe, vocab_size: 48}"]),
                 gpu_available=True)


def test_inputs_are_the_teacher_model_not_a_cache_and_the_plan_counts_its_online_work(tmp_path):
    from distill.artifacts import KeyStore
    from distill.plan import plan
    from distill.stages import Pipeline

    cfg = compose_cfg(["method=gkd"], tmp_path)
    pipe = Pipeline(cfg, KeyStore(cfg.paths.artifacts))
    assert {i.split("/")[0] for i in pipe.recipe_inputs(cfg.method)} == {"data", "sft_student", "sft_teacher",
                                                                          "dpo_teacher"}
    rows, _ = plan(cfg)
    (distill,) = [r for r in rows if r["stage"] == "distill"]
    assert "teacher scores" in distill["est"]["what"] and "student generates" in distill["est"]["what"]
    assert distill["est"]["flops"]["forward"] > 0 and distill["est"]["flops"]["generate"] > 0


def test_report_places_gkd_and_simpo_beside_the_others_with_their_own_symbols(tmp_path):
    from eval import report as R

    recs = [_run("dpo", 0, hparams={"beta": 0.1}, win=60.0),
            _run("adpa", 0, hparams={"gamma": 0.1, "top_k": 5, "advantage_clamp": False}, win=66.0),
            _run("pad_lppd", 0, hparams={"beta": 10.0, "calibration_lambda": 0.0}, win=58.0),
            _run("simpo", 0, hparams={"beta": 10.0, "gamma": 5.0}, win=61.0)]
    recs += [_run("gkd", s, hparams={"beta": 0.5, "lmbda": lam}, win=60 + 5 * lam + s) for lam in (0.0, 0.5, 1.0)
             for s in (0, 1)]
    paths = R.write_report(recs, tmp_path, metrics=["toy/win_rate"])
    md = paths["markdown"].read_text()
    order = ["student · DPO", "student · ADPA", "student · PAD-LPPD", "student · SimPO",
             "student · On-policy GKD (λ=0)"]
    assert all(o in md for o in order) and [md.index(o) for o in order] == sorted(md.index(o) for o in order)
    svg = paths["plot/sensitivity_gkd_lmbda_toy_win_rate.svg"].read_text()
    assert "GKD on-policy share" in svg and "calibration weight" not in svg
    assert R.hparam("gamma", "simpo").axis == "γ, SimPO target margin (dimensionless)"
    assert R.hparam("gamma", "adpa").axis == "γ, ADPA advantage weight (dimensionless)"
    assert R.hparam("beta", "gkd").axis == "β, GKD JSD interpolation (dimensionless)"


@pytest.mark.slow
def test_gkd_trains_on_policy_in_the_tiny_world_with_an_online_teacher(tiny_cfg):
    from distill.pipeline import run

    cfg = tiny_cfg("method=gkd", "logger=none", "method.lmbda=1.0")  # every step samples from the student
    run(cfg)
    rec = json.loads(next(Path(cfg.paths.results).glob("gkd-gemma-s0-*.json")).read_text())
    assert rec["method"] == "gkd" and rec["hparams"]["lmbda"] == 1.0 and "toy/win_rate" in rec["scores"]
    arts = Path(cfg.paths.artifacts)
    assert (arts / "dpo_teacher").is_dir() and not (arts / "teacher_cache").exists()  # scored online, no cache
    assert math.isfinite(rec["scores"]["toy/oracle_reward"])
