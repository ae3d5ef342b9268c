"""Open LLM Leaderboard: the shipped toy tasks (local JSON + lm-eval YAMLs), lm-eval on an in-memory
tiny model, and the real presets as configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import compose_cfg
from distill.toy.task import ToyTask, parse, solve
from eval.benchmarks import open_llm as ol

TASK = ToyTask()


def _default_task(tmp_path) -> ToyTask:
    cfg = compose_cfg([], tmp_path)
    from distill.stages import Pipeline

    return Pipeline(cfg).task()


def test_shipped_toy_tasks_are_what_the_generator_writes_for_the_default_task(tmp_path):
    task = _default_task(tmp_path)
    meta = json.loads((ol.TASKS_DIR / ol.TOY_META).read_text())
    out = ol.write_toy_tasks(tmp_path / "regen", task, n=meta["n"], seed=meta["seed"])
    for name in ol.TOY_TASKS:
        for ext in ("json", "yaml"):
            assert (out / f"{name}.{ext}").read_text() == (ol.TASKS_DIR / f"{name}.{ext}").read_text(), (name, ext)
    assert json.loads((out / ol.TOY_META).read_text()) == meta
    cfg = compose_cfg(["eval=all"], tmp_path)
    assert (meta["n"], meta["seed"]) == (cfg.eval.open_llm.toy.n, cfg.eval.open_llm.toy.seed)


def test_toy_documents_are_right():
    docs = ol.toy_task_docs(TASK, 30, seed=7)
    for d in docs["toy_choice"]:
        op, items = d["question"].split(" : ")
        truth = solve(op, items.split(), TASK.letters)
        assert len(d["choices"]) == 4 == len(set(d["choices"]))
        assert parse(d["choices"][d["label"]]) == (truth, True)
        assert all(parse(c)[0] != truth for i, c in enumerate(d["choices"]) if i != d["label"])
    for d in docs["toy_format"]:
        assert parse(d["choices"][d["label"]])[1] and not parse(d["choices"][1 - d["label"]])[1]
        assert parse(d["choices"][0])[0] == parse(d["choices"][1])[0]
    assert {d["label"] for d in docs["toy_format"]} == {0, 1}
    for d in docs["toy_answer"]:
        op, items = d["question"].split(" : ")
        assert d["letters"] == " ".join(solve(op, items.split(), TASK.letters))
    assert len({d["question"] for d in docs["toy_choice"]}) == 30


def test_localized_yamls_point_at_absolute_data_files(tmp_path):
    d = ol.localize_tasks(ol.TASKS_DIR, tmp_path / "tasks", list(ol.TOY_TASKS))
    for name in ol.TOY_TASKS:
        cfg = yaml.safe_load((d / f"{name}.yaml").read_text())
        path = Path(cfg["dataset_kwargs"]["data_files"]["test"])
        assert path.is_absolute() and path == (ol.TASKS_DIR / f"{name}.json").resolve()
        assert cfg["dataset_path"] == "json"


def test_another_toy_task_gets_its_own_files(tmp_path):
    other = ToyTask(alphabet_size=5, min_len=2, max_len=4)
    d = ol.toy_tasks_dir(other, tmp_path, n=10, seed=1)
    data = Path(yaml.safe_load((d / "toy_choice.yaml").read_text())["dataset_kwargs"]["data_files"]["test"])
    assert data.parent == tmp_path / "data"
    letters = {c for doc in json.loads(data.read_text()) for c in doc["question"].split(" : ")[1].split()}
    assert letters <= set("abcde")


def test_lm_eval_runs_the_toy_tasks_on_an_in_memory_model(tmp_path):
    from distill.models import build_model
    from distill.toy.tokenizer import build_toy_tokenizer
    from omegaconf import OmegaConf

    tok = build_toy_tokenizer("gemma", TASK.corpus())
    family = OmegaConf.create({"family": "llama", "config_class": "transformers.LlamaConfig",
                               "attn_implementation": "eager",
                               "student": {"toy": {"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32,
                                                   "num_attention_heads": 2, "num_key_value_heads": 1}}})
    model = build_model(family, "student", tok, "toy", seed=0, max_length=80)
    preset = OmegaConf.to_container(compose_cfg(["eval=all"], tmp_path).eval.open_llm.presets.toy)
    include = ol.toy_tasks_dir(TASK, tmp_path / "work", n=60, seed=1234)
    out = ol.evaluate(model, tok, preset, include_path=include, batch_size=32, limit=12, log_samples=True,
                      bootstrap_iters=50)
    s = out["scores"]
    assert set(s) == {"toy_choice", "toy_choice_stderr", "toy_format", "toy_format_stderr", "toy_answer",
                      "toy_answer_stderr", "average"}
    assert all(0 <= s[t] <= 100 for t in ol.TOY_TASKS)
    assert s["average"] == pytest.approx(sum(s[t] for t in ol.TOY_TASKS) / 3)
    assert out["n_samples"] == {t: 12 for t in ol.TOY_TASKS}
    # the chat template wraps each question as the toy models were trained
    arg = out["samples"]["toy_choice"][0]["arguments"]
    first = arg[0] if isinstance(arg[0], (list, tuple)) else arg["gen_args_0"]["arg_0"]
    assert "<start_of_turn>" in str(first)
    rows = ol.sample_rows(out["samples"], preset["tasks"])
    assert len(rows) == 36 and {r["task"] for r in rows} == set(ol.TOY_TASKS)
    assert all(r["value"] in (0.0, 1.0) for r in rows)
    # the exact-match task: the strict filter alone is counted (one row per document)
    assert sum(r["task"] == "toy_answer" for r in rows) == 12


def test_real_presets_are_the_leaderboards(tmp_path):
    oc = compose_cfg(["eval=all", "world=full"], tmp_path).eval.open_llm
    v1 = {k: (v.num_fewshot, v.metric) for k, v in oc.presets.v1.tasks.items()}
    assert v1 == {"arc_challenge": (25, "acc_norm,none"), "hellaswag": (10, "acc_norm,none"), "mmlu": (5, "acc,none"),
                  "truthfulqa_mc2": (0, "acc,none"), "winogrande": (5, "acc,none"),
                  "gsm8k": (5, "exact_match,strict-match")}
    assert oc.presets.v1.average and not oc.presets.v1.apply_chat_template
    assert list(oc.presets.v2.run) == ["leaderboard"] and not oc.presets.v2.average
    assert all(k.startswith("leaderboard_") for k in oc.presets.v2.tasks)


@pytest.mark.slow
def test_real_task_names_exist_in_lm_eval():
    """The preset names are lm-eval's (its task index; nothing is downloaded)."""
    from lm_eval.tasks import TaskManager

    from conftest import CONF

    presets = yaml.safe_load((Path(CONF) / "eval" / "all.yaml").read_text())["open_llm"]["presets"]
    known = set(TaskManager().all_tasks)
    for name in ("v1", "v2"):
        wanted = set(presets[name].get("run") or []) | set(presets[name]["tasks"])
        assert wanted <= known, wanted - known
