"""Open LLM Leaderboard: the shipped toy tasks (local JSON + lm-eval YAMLs), lm-eval on an in-memory
tiny model, and the real presets as configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import compose_cfg
from toyworld.task import ToyTask, parse, solve
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
    from toyworld.tokenizer import build_toy_tokenizer
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
    assert oc.presets.v1.leaderboard == "v1" and not oc.presets.v1.apply_chat_template
    assert list(oc.presets.v2.run) == ["leaderboard"] and oc.presets.v2.leaderboard == "v2"
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


# ---- the leaderboards' aggregation, on crafted per-task results ------------------------------------
def _v1_results() -> dict:
    """lm-eval results of the v1 tasks: 57 MMLU subjects with accuracies 0.01 .. 0.57, the four
    category groups and the size-weighted group at other values (which must not count)."""
    res = {f"mmlu_subject_{i:02d}": {"acc,none": (i + 1) / 100, "acc_stderr,none": 0.02} for i in range(57)}
    res.update({g: {"acc,none": 0.9} for g in ol.MMLU_CATEGORIES})
    res["mmlu"] = {"acc,none": 0.40, "acc_stderr,none": 0.004}
    res.update({"arc_challenge": {"acc_norm,none": 0.60}, "hellaswag": {"acc_norm,none": 0.80},
                "truthfulqa_mc2": {"acc,none": 0.40}, "winogrande": {"acc,none": 0.70},
                "gsm8k": {"exact_match,strict-match": 0.10}})
    return res


def test_v1_average_uses_the_mean_of_the_57_mmlu_subjects(tmp_path):
    preset = OmegaConf.to_container(compose_cfg(["eval=all", "world=full"], tmp_path).eval.open_llm.presets.v1)
    res = _v1_results()
    scores = {t: 100 * res[t][spec["metric"]] for t, spec in preset["tasks"].items()}
    out = ol.v1_aggregate(res, scores, preset["tasks"])
    # subjects: (1 + 2 + ... + 57) / 57 = 1653 / 57 = 29 (percent); lm-eval's weighted group said 40
    assert out["mmlu"] == pytest.approx(29.0) and out["mmlu_size_weighted"] == pytest.approx(40.0)
    assert out["mmlu_n_subjects"] == 57
    assert out["mmlu_stderr"] == pytest.approx(100 * (57 * 0.02 ** 2) ** 0.5 / 57)
    # the leaderboard's average: (60 + 80 + 29 + 40 + 70 + 10) / 6 = 289 / 6
    assert out["v1_average"] == pytest.approx(289 / 6)


def _v2_results() -> dict:
    res = {f"leaderboard_bbh_{t}": {"acc_norm,none": 1 / n} for t, n in ol.V2_BBH_CHOICES.items()}  # at chance: 0
    res["leaderboard_bbh_boolean_expressions"] = {"acc_norm,none": 0.75}   # 2 choices: (0.75 - 0.5) / 0.5 = 50
    res["leaderboard_bbh_geometric_shapes"] = {"acc_norm,none": 1.0}       # 11 choices: 100
    res["leaderboard_bbh_web_of_lies"] = {"acc_norm,none": 0.40}           # below chance (0.5): 0
    res["leaderboard_bbh"] = {"acc_norm,none": 0.55}
    res.update({"leaderboard_musr_murder_mysteries": {"acc_norm,none": 0.7},    # 2: 40
                "leaderboard_musr_object_placements": {"acc_norm,none": 0.4},   # 5: (0.4 - 0.2) / 0.8 = 25
                "leaderboard_musr_team_allocation": {"acc_norm,none": 0.6},     # 3: (0.6 - 1/3) / (2/3) = 40
                "leaderboard_musr": {"acc_norm,none": 0.5},
                "leaderboard_gpqa": {"acc_norm,none": 0.30},                    # 4: 0.05 / 0.75 = 6.667
                "leaderboard_mmlu_pro": {"acc,none": 0.28},                     # 10: 0.18 / 0.9 = 20
                "leaderboard_math_hard": {"exact_match,none": 0.12},            # generative: 12
                "leaderboard_ifeval": {"prompt_level_strict_acc,none": 0.5,     # (0.5 + 0.6) / 2 = 55
                                       "inst_level_strict_acc,none": 0.6, "prompt_level_strict_acc_stderr,none": 0.02}})
    return res


def test_v2_normalisation_and_average_worked_by_hand():
    out = ol.v2_aggregate(_v2_results())
    assert out["leaderboard_bbh_normalized"] == pytest.approx((50 + 100) / 24)
    assert out["leaderboard_musr_normalized"] == pytest.approx((40 + 25 + 40) / 3)
    assert out["leaderboard_gpqa_normalized"] == pytest.approx(20 / 3)
    assert out["leaderboard_mmlu_pro_normalized"] == pytest.approx(20.0)
    assert out["leaderboard_math_hard_normalized"] == pytest.approx(12.0)
    assert out["leaderboard_ifeval_normalized"] == pytest.approx(55.0)
    assert out["leaderboard_ifeval"] == pytest.approx(55.0)
    assert (out["leaderboard_ifeval_prompt_strict"], out["leaderboard_ifeval_inst_strict"]) == (50.0, 60.0)
    assert out["v2_average"] == pytest.approx((6.25 + 35 + 20 / 3 + 20 + 12 + 55) / 6)
    # the documentation's GPQA example: 0.6 raw -> 46.67
    assert ol.normalize_within_range(0.6, 0.25) == pytest.approx(46.6667, abs=1e-4)


def test_bbh_choices_are_lm_evals():
    """The random baselines come from lm-eval's own leaderboard task configs (their choices)."""
    import lm_eval

    folder = Path(lm_eval.__file__).parent / "tasks" / "leaderboard" / "bbh_mc"
    if not folder.is_dir():
        pytest.skip(f"lm-eval's leaderboard tasks not found at {folder}")
    for name, n in ol.V2_BBH_CHOICES.items():
        cfg = yaml.safe_load((folder / f"{name}.yaml").read_text().split("fewshot_config")[0])
        assert len(cfg["doc_to_choice"]) == n, name
    assert len(list(folder.glob("[a-z]*.yaml"))) == len(ol.V2_BBH_CHOICES)


@pytest.mark.parametrize("board", ["v1", "v2"])
def test_evaluate_reports_the_leaderboards_numbers(board, tmp_path, monkeypatch):
    """The preset's leaderboard aggregation through ``evaluate`` (lm-eval's run replaced by the
    crafted results): both averages reach the scores, the prompt-level IFEval stderr does not."""
    import lm_eval
    import lm_eval.models.huggingface as hf
    import lm_eval.tasks as tasks

    res = _v1_results() if board == "v1" else _v2_results()
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kw: {"results": res})
    monkeypatch.setattr(hf, "HFLM", lambda **kw: None)
    monkeypatch.setattr(tasks, "TaskManager", lambda *a, **kw: None)
    preset = OmegaConf.to_container(compose_cfg(["eval=all", "world=full"], tmp_path).eval.open_llm.presets[board])
    s = ol.evaluate(None, None, preset)["scores"]
    if board == "v1":
        assert s["v1_average"] == pytest.approx(289 / 6) and s["mmlu"] == pytest.approx(29.0)
        assert "average" not in s and "v2_average" not in s
    else:
        assert s["v2_average"] == pytest.approx((6.25 + 35 + 20 / 3 + 20 + 12 + 55) / 6)
        assert s["leaderboard_ifeval"] == pytest.approx(55.0) and "leaderboard_ifeval_stderr" not in s
        assert s["leaderboard_bbh"] == pytest.approx(55.0)  # the raw group value stays under the task's name
