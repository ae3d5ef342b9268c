"""The papers' setups (``conf/experiment/``): every one composes and dry-runs (nothing downloaded or
built), uses the real judge and realistic answer lengths, gives base checkpoints their SFT stage and
trains for the papers' epochs; ``experiment=smoke`` is the tests' tiny world."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import CONF, TINY, compose_cfg, no_downloads, resolved
from distill.pipeline import run
from distill.plan import base_checkpoint_problems, plan

EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))
# the papers' setups (world=full): experiment -> (teacher, student, method)
PAPERS = {
    "pad_gemma": ("google/gemma-2-9b-it", "google/gemma-2-2b-it", "pad_lppd"),
    "pad_llama": ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "pad_lppd"),
    "adpa_llama": ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B", "adpa_plus"),
    "adpa_danube2": ("mistralai/Mistral-7B-v0.1", "h2oai/h2o-danube2-1.8b-base", "adpa_plus"),
    "adpa_danube3": ("mistralai/Mistral-7B-v0.1", "h2oai/h2o-danube3-500m-base", "adpa_plus"),
    "adpa_qwen": ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-1.5B", "adpa_plus"),
}
# the papers' training settings (released code): stage -> (epochs, lr, batch); β_T of the teacher's DPO
ADPA = {"sft_teacher": (3, 2.0e-5, 128), "sft_student": (3, 2.0e-5, 128), "dpo_teacher": (1, 5.0e-7, 128),
        "distill": (3, 5.0e-7, 128)}
PAD = {"distill": (1, 8.0e-7, 128)}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """experiment name -> (its composed config, plan rows, plan summary), composed and planned once."""
    done: dict = {}

    def get(name: str):
        if name not in done:
            with pytest.MonkeyPatch.context() as mp:
                no_downloads(mp)
                cfg = compose_cfg([f"experiment={name}"], tmp_path_factory.mktemp(name))
                done[name] = (cfg, *plan(cfg))
        return done[name]

    return get


def test_the_papers_setups_are_all_shipped():
    assert set(PAPERS) <= set(EXPERIMENTS), sorted(set(PAPERS) - set(EXPERIMENTS))
    assert "smoke" in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_dry_runs(name, capsys, monkeypatch, tmp_path):
    no_downloads(monkeypatch)
    cfg = compose_cfg([f"experiment={name}", "logger=none", "dry_run=true"], tmp_path)
    resolved(cfg)  # every interpolation resolves
    assert math.isnan(run(cfg))
    out = capsys.readouterr().out
    assert "dry run" in out and "plan (in build order)" in out and "estimated time ≤" in out
    for stage in ("sft_student", "sft_teacher", "dpo_teacher", "distill", "generate"):
        assert stage in out, stage
    if cfg.world.source == "hub":  # base checkpoints show their SFT stage, instruct ones are used as they are
        for role in ("teacher", "student"):
            shown = "SFT: train " + role if cfg.model.hub_kind[role] == "base" else role + " checkpoint as is (steps 0)"
            assert shown in out, (role, shown)
        assert "a base checkpoint without its SFT stage" not in out
    assert not (tmp_path / "artifacts").exists()  # nothing built


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_experiments_name_their_pair_and_use_the_real_judge(name, planned):
    cfg = planned(name)[0]
    teacher, student, method = PAPERS[name]
    assert cfg.world.name == "full" and cfg.world.source == "hub"
    assert (cfg.model.teacher.hub_id, cfg.model.student.hub_id, cfg.method.name) == (teacher, student, method)
    # the full world is judged by GPT-4 through the OpenAI API, not by the toy oracle
    assert cfg.judge.name == "openai" and "oracle" not in cfg.judge._target_
    assert cfg.judge.model.startswith("gpt-4")
    assert not cfg.optimized_metric.startswith("toy/")
    assert cfg.optimized_metric.split("/")[1] in cfg.eval.benchmarks
    # realistic answer lengths, not the toy world's 16 tokens
    assert cfg.eval.max_new_tokens >= 1024
    for bench in cfg.eval.benchmarks:
        if bench != "open_llm":
            assert cfg.eval[bench].max_new_tokens >= 1024, bench
    assert cfg.stages.max_length == 2048 and cfg.stages.max_new_tokens >= 1024
    assert cfg.optimizer.betas == [0.9, 0.999]


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_base_checkpoints_get_their_sft_stage_and_instruct_ones_are_used_as_is(name, planned):
    cfg, rows, _ = planned(name)
    assert base_checkpoint_problems(cfg) == []
    rows = {r["stage"]: r for r in rows}
    for role in ("teacher", "student"):
        kind = cfg.model.hub_kind[role]
        steps = cfg.stages[f"sft_{role}"].steps
        what = rows[f"sft_{role}"]["est"]["what"]
        if kind == "base":  # ADPA instruction-tunes π_ref and the student before anything else
            assert steps > 0 and what.startswith("SFT: ") and rows[f"sft_{role}"]["est"]["tokens"] > 0
        else:  # PAD uses the *-it checkpoints as they are
            assert kind == "instruct" and steps == 0 and "as is (steps 0)" in what


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_experiments_train_for_the_papers_epochs(name, planned):
    """The step counts are the papers' epochs over the rows the stages train on (the dry run's
    epoch column), with the papers' learning rates and batch."""
    cfg, rows, _ = planned(name)
    settings = ADPA if name.startswith("adpa") else PAD
    for stage, (epochs, lr, batch) in settings.items():
        trained = [r for r in rows if r["stage"] == stage]
        assert trained, stage
        for r in trained:  # ADPA+ trains two distill stages (DCKD, then ADPA), both with these settings
            assert r["est"]["epochs"] == pytest.approx(epochs, abs=0.03), (stage, r["est"]["what"])
            assert cfg.stages[stage].lr == lr and cfg.stages[stage].batch_size == batch
    if name.startswith("adpa"):
        assert cfg.stages.dpo_teacher.beta == 0.01  # β_T of the teacher's DPO
        assert [r["spec"]["method"]["name"] for r in rows if r["stage"] == "distill"] == ["dckd", "adpa_plus"]
    else:
        m = cfg.method
        assert (m.beta, m.temperature, m.top_p, m.n_samples, m.n_keep) == (10.0, 1.0, 0.95, 5, 4)
        assert cfg.stages.max_new_tokens == 4096  # the released sampling script's max_tokens


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_plans_fit_the_gpus_they_name(name, planned):
    """Model states of every stage fit an 80 GB GPU with the experiment's trainer (activations on
    top); training runs on the trainer's GPUs, and the time adds up."""
    cfg, rows, total = planned(name)
    assert 0 < total["peak_mem"] < 80e9
    train = [r for r in rows if r["est"]["flops"].get("train")]
    assert train and {r["est"]["gpus"] for r in train} == {cfg.trainer.devices * cfg.trainer.num_nodes}
    assert total["seconds"] == pytest.approx(sum(r["est"]["seconds"] for r in rows))
    assert total["gpu_hours"] == pytest.approx(sum(r["est"]["seconds"] * r["est"]["gpus"] for r in rows) / 3600)
    assert total["gpu_hours"] > total["seconds"] / 3600 > 0
    # the frozen forward passes the experiment sizes (eval.batch_size) fit with their logits
    forward = [r["est"] for r in rows if r["stage"] in ("teacher_cache", "pad_scores")]
    forward += [r["est"] for r in rows if r["stage"] == "dpo_teacher" and cfg.stages.dpo_teacher.steps == 0]
    assert forward and all(0 < e["logits"] and e["mem"] + 2 * e["logits"] < 80e9 for e in forward)


def test_smoke_is_the_tests_tiny_world(tmp_path):
    import ast

    tree = ast.parse((Path(CONF).parent / "bench" / "faults.py").read_text())
    (faults_tiny,) = [ast.literal_eval(n.value) for n in tree.body
                      if isinstance(n, ast.Assign) and [t.id for t in n.targets if isinstance(t, ast.Name)] == ["TINY"]]
    assert TINY == ["experiment=smoke"] and faults_tiny[0] == "experiment=smoke"  # one preset, no copies
    smoke = resolved(compose_cfg(TINY, tmp_path))
    assert smoke["world"]["name"] == "toy" and smoke["judge"]["name"] == "oracle"
    assert smoke["data"]["sizes"]["sft"] == 256 and smoke["stages"]["distill"]["steps"] == 4 and smoke["eval"]["n_prompts"] == 24
