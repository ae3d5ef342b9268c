"""Open LLM Leaderboard: ``lm_eval.simple_evaluate`` on an ``HFLM`` wrapping the in-memory model.

Presets (``conf/eval/all.yaml``, ``eval.open_llm.presets``):

- ``v1`` -- the first leaderboard: ARC-Challenge 25-shot (acc_norm), HellaSwag 10-shot (acc_norm),
  MMLU 5-shot (acc), TruthfulQA mc2 0-shot, Winogrande 5-shot (acc), GSM8K 5-shot (exact match,
  strict), and their average ``v1_average``. MMLU is the unweighted mean of the 57 subject
  accuracies, as the v1 leaderboard averages them (lm-eval's own ``mmlu`` group value weights the
  subjects by size; it is kept as ``mmlu_size_weighted``). Tasks with different shot counts run in
  separate calls.
- ``v2`` -- lm-eval's ``leaderboard`` group, run once. Raw scores per task (lm-eval's group
  values), IFEval as the leaderboard combines it (mean of prompt-level and instruction-level strict
  accuracy), and each task normalised to its random baseline as the leaderboard does
  (``<task>_normalized``; see :func:`v2_normalized`), with their mean ``v2_average``.
- ``toy`` -- toy tasks in ``eval/tasks/`` (local JSON files and lm-eval task YAMLs) built from the
  toy task: ``toy_choice`` (pick the right answer among four, loglikelihood, like ARC),
  ``toy_format`` (the bracketed against the plain form of the right answer, like TruthfulQA's
  preferred-answer choice) and ``toy_answer`` (generate the answer, exact match, like GSM8K; the
  strict filter wants the bracketed form, the flexible one only the letters).

The real presets need the hub (task data sets and checkpoints) and cannot run here. lm-eval reads
the toy tasks' JSON through ``dataset_path: json`` with absolute ``data_files``, so the YAMLs are
written with absolute paths into the run's folder before the ``TaskManager`` indexes it
(``include_defaults=False``: only these tasks, and fast).

Scores are reported in percent: ``<task>`` (the task's headline metric), ``<task>_stderr``,
``average`` (plain mean of the tasks' headline metrics, when the preset asks for it: the toy
preset) and the leaderboards' own aggregates (``leaderboard: v1`` / ``v2`` in the preset).
"""
from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Optional

import yaml

from toyworld.task import ToyTask, render

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
TOY_META = "toy_tasks.json"     # the toy task's parameters, count and seed the shipped files were built with
TOY_TASKS = ("toy_choice", "toy_format", "toy_answer")


# ---- the toy tasks -----------------------------------------------------------------------------
def _task_yaml(name: str) -> dict:
    common = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": f"{name}.json"}},
              "test_split": "test", "doc_to_text": "{{question}}", "metadata": {"version": 1.0}}
    if name == "toy_answer":
        # as GSM8K: the target is the bare answer; the strict filter takes it only from the
        # bracketed form, the flexible one from the first run of single letters
        return {**common, "output_type": "generate_until", "doc_to_target": "{{letters}}",
                "generation_kwargs": {"until": ["\n\n"], "do_sample": False, "max_gen_toks": 16},
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
                "filter_list": [
                    {"name": "strict-match", "filter": [
                        {"function": "regex", "regex_pattern": r"\[ ([a-z](?: [a-z])*) \]"},
                        {"function": "take_first"}]},
                    {"name": "flexible-extract", "filter": [
                        {"function": "regex", "regex_pattern": r"(?<![a-z])([a-z](?: [a-z])*)(?![a-z])"},
                        {"function": "take_first"}]}]}
    metrics = [{"metric": m, "aggregation": "mean", "higher_is_better": True}
               for m in (("acc", "acc_norm") if name == "toy_choice" else ("acc",))]
    return {**common, "output_type": "multiple_choice", "doc_to_target": "{{label}}", "doc_to_choice": "{{choices}}",
            "metric_list": metrics}


def toy_task_docs(task: ToyTask, n: int, seed: int) -> dict[str, list[dict]]:
    """The documents of the three toy tasks (distinct instructions per task)."""
    rng = random.Random(f"{seed}/open_llm")
    docs: dict[str, list[dict]] = {name: [] for name in TOY_TASKS}
    for name in TOY_TASKS:
        seen = set()
        while len(docs[name]) < n:
            p = task.sample(rng)
            if p.instruction in seen:
                if len(seen) > 100 * n:
                    raise ValueError(f"the toy task has fewer than {n} distinct problems")
                continue
            seen.add(p.instruction)
            i = len(docs[name])
            doc = {"id": i, "question": p.instruction}
            if name == "toy_choice":
                wrong: list[list[str]] = []
                while len(wrong) < 3:
                    w = task.corrupt(p.answer, rng)
                    if w != p.answer and w not in wrong:
                        wrong.append(w)
                choices = [render(a, True) for a in [p.answer, *wrong]]
                rng.shuffle(choices)
                doc.update(choices=choices, label=choices.index(render(p.answer, True)))
            elif name == "toy_format":
                choices = [render(p.answer, True), render(p.answer, False)]
                if rng.random() < 0.5:
                    choices.reverse()
                doc.update(choices=choices, label=choices.index(render(p.answer, True)))
            else:
                doc.update(letters=" ".join(p.answer))
            docs[name].append(doc)
    return docs


def write_toy_tasks(out_dir: str | Path, task: ToyTask, *, n: int = 60, seed: int = 1234) -> Path:
    """Write ``<name>.json`` (a JSON list of documents) and ``<name>.yaml`` (lm-eval's task config,
    ``data_files`` relative to the folder) for each toy task, and ``toy_tasks.json`` (how they were
    built). The files shipped in ``eval/tasks/`` come from this function with the default toy task."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in toy_task_docs(task, n, seed).items():
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
        (out / f"{name}.yaml").write_text(yaml.safe_dump(_task_yaml(name), sort_keys=False, width=1000))
    (out / TOY_META).write_text(json.dumps({"task": _task_params(task), "n": n, "seed": seed}, indent=1) + "\n")
    return out


def _task_params(task: ToyTask) -> dict:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(task.cfg).items()}


def localize_tasks(src_dir: str | Path, out_dir: str | Path, names: Optional[list[str]] = None) -> Path:
    """Copy task YAMLs into ``out_dir`` with every ``data_files`` path made absolute (relative paths
    are taken relative to ``src_dir``), which is how lm-eval's ``json`` loader must see them."""
    src, out = Path(src_dir).resolve(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        if names is not None and cfg.get("task") not in names:
            continue
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if isinstance(files, Mapping):
            cfg["dataset_kwargs"]["data_files"] = {k: str((src / v).resolve()) if not Path(v).is_absolute() else v
                                                   for k, v in files.items()}
        (out / path.name).write_text(yaml.safe_dump(cfg, sort_keys=False, width=1000))
    return out


def toy_tasks_dir(task: ToyTask, work_dir: str | Path, *, shipped: str | Path = TASKS_DIR, n: int = 60,
                  seed: int = 1234) -> Path:
    """A folder of toy task YAMLs with absolute data paths: the shipped files when they were built
    with this toy task, else files rebuilt for it (in ``work_dir/data``)."""
    shipped = Path(shipped)
    meta_path = shipped / TOY_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if meta is not None and meta == {"task": _task_params(task), "n": n, "seed": seed}:
        src = shipped
    else:
        log.info("Open LLM toy tasks: the shipped files were built for another toy task; rebuilding them")
        src = write_toy_tasks(Path(work_dir) / "data", task, n=n, seed=seed)
    return localize_tasks(src, Path(work_dir) / "tasks", list(TOY_TASKS))


# ---- running lm-eval ---------------------------------------------------------------------------
def _quiet_lm_eval() -> None:
    for name in ("lm_eval", "lm-eval", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def evaluate(model, tokenizer, preset: Mapping, *, include_path: Optional[str | Path] = None, batch_size: int = 32,
             limit: Optional[int] = None, log_samples: bool = False, bootstrap_iters: int = 1000,
             seed: int = 0) -> dict:
    """Run a preset; return ``{"scores": {...}, "results": lm-eval's results, "samples": {...}}``.

    ``preset``: ``tasks`` (name -> ``{num_fewshot, metric}``; ``metric`` is lm-eval's result key,
    e.g. ``acc_norm,none``), optional ``run`` (task or group names given to lm-eval in one call
    instead of the tasks themselves), ``apply_chat_template``, ``fewshot_as_multiturn``,
    ``average``.
    """
    _quiet_lm_eval()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = dict(preset["tasks"])
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    tm = (TaskManager(include_path=[str(include_path)], include_defaults=False) if include_path is not None
          else TaskManager())
    calls: dict[Optional[int], list[str]] = defaultdict(list)
    if preset.get("run"):
        calls[None] = list(preset["run"])
    else:
        for name, spec in tasks.items():
            calls[spec.get("num_fewshot")].append(name)
    results, samples, configs = {}, {}, {}
    from distill.progress import Tracker, current_stage

    with Tracker("lm_eval " + ", ".join(n for names in calls.values() for n in names), total=len(calls),
                 stage=current_stage() or "lm_eval", unit="calls") as bar:  # a line every period while lm-eval runs
        for shots, names in calls.items():
            res = simple_evaluate(model=lm, tasks=names, num_fewshot=shots, task_manager=tm, limit=limit,
                                  apply_chat_template=bool(preset.get("apply_chat_template", False)),
                                  fewshot_as_multiturn=bool(preset.get("fewshot_as_multiturn", False)),
                                  log_samples=log_samples, bootstrap_iters=bootstrap_iters, random_seed=seed,
                                  numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
            results.update(res["results"])
            samples.update(res.get("samples") or {})
            configs.update(res.get("configs") or {})
            bar.advance()
    scores = {}
    for name, spec in tasks.items():
        metric = spec["metric"]
        if name not in results or metric not in results[name]:
            raise KeyError(f"lm-eval returned no {metric!r} for {name!r} (got {sorted(results.get(name, {}))})")
        scores[name] = 100.0 * float(results[name][metric])
        m, _, filt = metric.partition(",")
        stderr = results[name].get(f"{m}_stderr,{filt}")
        if isinstance(stderr, (int, float)):
            scores[f"{name}_stderr"] = 100.0 * float(stderr)
    if preset.get("average", True) and tasks:
        scores["average"] = sum(scores[n] for n in tasks) / len(tasks)
    board = preset.get("leaderboard")
    if board == "v1":
        scores.update(v1_aggregate(results, scores, tasks))
    elif board == "v2":
        scores.pop("leaderboard_ifeval_stderr", None)  # prompt-level's; the combined metric has none from lm-eval
        scores.update(v2_aggregate(results))
    elif board is not None:
        raise ValueError(f"Open LLM preset: leaderboard={board!r}; choose v1, v2 or leave it out")
    return {"scores": scores, "results": results, "samples": samples,
            "n_samples": {n: len({s.get("doc_id") for s in samples.get(n, [])}) for n in tasks}}


def sample_rows(samples: Mapping[str, list], tasks: Mapping[str, Mapping]) -> list[dict]:
    """Per-document rows (task, doc id, target, the model's filtered response, the metric)."""
    rows = []
    for name, spec in tasks.items():
        metric, _, filt = spec["metric"].partition(",")
        for s in samples.get(name, []):
            if s.get("filter", filt) != filt:
                continue
            value = s.get(metric)
            rows.append({"task": name, "doc_id": s.get("doc_id"), "target": str(s.get("target")),
                         "response": json.dumps(s.get("filtered_resps"), default=str)[:500],
                         "metric": metric, "value": None if value is None else float(value)})
    return rows


# ---- the leaderboards' own aggregation ---------------------------------------------------------
MMLU_CATEGORIES = ("mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other")
MMLU_SUBJECTS = 57
V1_TASKS = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k")


def _value(results: Mapping, task: str, metric: str) -> float:
    try:
        return float(results[task][metric])
    except KeyError:
        raise KeyError(f"lm-eval returned no {metric!r} for {task!r} (got {sorted(results.get(task, {}))})") from None


def mmlu_subject_mean(results: Mapping, metric: str = "acc,none") -> tuple[float, Optional[float], int]:
    """(mean, its standard error, number of subjects) of MMLU's subject accuracies, unweighted.

    The subjects are lm-eval's ``mmlu_<subject>`` tasks (its four category groups are left out).
    The standard error is ``sqrt(sum se_i^2) / n`` (independent subjects); None without them."""
    subjects = sorted(k for k in results if k.startswith("mmlu_") and k not in MMLU_CATEGORIES)
    if not subjects:
        raise KeyError("lm-eval's results hold no MMLU subjects (mmlu_<subject>); the v1 MMLU score is their mean")
    if len(subjects) != MMLU_SUBJECTS:
        log.warning("MMLU: %d subjects in lm-eval's results, not %d", len(subjects), MMLU_SUBJECTS)
    values = [_value(results, k, metric) for k in subjects]
    m, _, filt = metric.partition(",")
    errs = [results[k].get(f"{m}_stderr,{filt}") for k in subjects]
    se = (sum(e * e for e in errs) ** 0.5 / len(errs)
          if all(isinstance(e, (int, float)) for e in errs) else None)
    return sum(values) / len(values), se, len(subjects)


def v1_aggregate(results: Mapping, scores: Mapping[str, float], tasks: Mapping[str, Mapping]) -> dict:
    """The v1 leaderboard's numbers (percent): ``mmlu`` as the mean of the subjects (lm-eval's
    size-weighted group value moves to ``mmlu_size_weighted``) and ``v1_average``, the mean of
    the six tasks' scores."""
    out: dict[str, float] = {}
    headline = dict(scores)
    if "mmlu" in tasks:
        mean, se, n = mmlu_subject_mean(results, tasks["mmlu"]["metric"])
        out["mmlu_size_weighted"] = scores["mmlu"]
        out["mmlu"] = headline["mmlu"] = 100.0 * mean
        out["mmlu_n_subjects"] = n
        if se is not None:
            out["mmlu_stderr"] = 100.0 * se
    missing = [t for t in V1_TASKS if t not in headline]
    if missing:
        log.warning("Open LLM v1: no %s; v1_average not reported", missing)
        return out
    out["v1_average"] = sum(headline[t] for t in V1_TASKS) / len(V1_TASKS)
    return out


# Random baselines of the v2 leaderboard: 1 / number of choices of each multiple-choice (sub)task
# (the choices of lm-eval's leaderboard task configs); generative tasks (IFEval, MATH) have 0.
V2_BBH_CHOICES = {
    "boolean_expressions": 2, "causal_judgement": 2, "date_understanding": 6, "disambiguation_qa": 3,
    "formal_fallacies": 2, "geometric_shapes": 11, "hyperbaton": 2, "logical_deduction_five_objects": 5,
    "logical_deduction_seven_objects": 7, "logical_deduction_three_objects": 3, "movie_recommendation": 6,
    "navigate": 2, "object_counting": 19, "penguins_in_a_table": 5, "reasoning_about_colored_objects": 18,
    "ruin_names": 6, "salient_translation_error_detection": 6, "snarks": 2, "sports_understanding": 2,
    "temporal_sequences": 4, "tracking_shuffled_objects_five_objects": 5,
    "tracking_shuffled_objects_seven_objects": 7, "tracking_shuffled_objects_three_objects": 3, "web_of_lies": 2,
}
V2_MUSR_CHOICES = {"murder_mysteries": 2, "object_placements": 5, "team_allocation": 3}
V2_GPQA_CHOICES = 4
V2_MMLU_PRO_CHOICES = 10
V2_TASKS = ("leaderboard_ifeval", "leaderboard_bbh", "leaderboard_math_hard", "leaderboard_gpqa",
            "leaderboard_musr", "leaderboard_mmlu_pro")


def normalize_within_range(value: float, lower: float, upper: float = 1.0) -> float:
    """The v2 leaderboard's normalisation of a raw score in [0, 1]: ``100 (value - lower) / (upper -
    lower)``, and 0 for a score below the random baseline ``lower``."""
    if value < lower:
        return 0.0
    return 100.0 * (value - lower) / (upper - lower)


def ifeval_combined(results: Mapping, task: str = "leaderboard_ifeval") -> float:
    """IFEval as the v2 leaderboard reports it: the mean of prompt-level and instruction-level
    strict accuracy (in [0, 1])."""
    return (_value(results, task, "prompt_level_strict_acc,none") + _value(results, task, "inst_level_strict_acc,none")) / 2


def v2_normalized(results: Mapping) -> dict[str, float]:
    """Each v2 task normalised to its random baseline, as the leaderboard does (0-100):

    - BBH and MuSR: every subtask normalised with 1/its number of choices, then the plain mean of
      the subtasks (acc_norm);
    - GPQA (4 choices, acc_norm) and MMLU-Pro (10 choices, acc): the task's score normalised;
    - MATH Lvl 5 (exact match) and IFEval (the combined strict accuracy): generative, baseline 0,
      so 100 x the raw score.
    """
    out = {}
    bbh = [normalize_within_range(_value(results, f"leaderboard_bbh_{t}", "acc_norm,none"), 1 / n)
           for t, n in V2_BBH_CHOICES.items()]
    out["leaderboard_bbh"] = sum(bbh) / len(bbh)
    musr = [normalize_within_range(_value(results, f"leaderboard_musr_{t}", "acc_norm,none"), 1 / n)
            for t, n in V2_MUSR_CHOICES.items()]
    out["leaderboard_musr"] = sum(musr) / len(musr)
    out["leaderboard_gpqa"] = normalize_within_range(_value(results, "leaderboard_gpqa", "acc_norm,none"),
                                                     1 / V2_GPQA_CHOICES)
    out["leaderboard_mmlu_pro"] = normalize_within_range(_value(results, "leaderboard_mmlu_pro", "acc,none"),
                                                         1 / V2_MMLU_PRO_CHOICES)
    out["leaderboard_math_hard"] = normalize_within_range(_value(results, "leaderboard_math_hard",
                                                                 "exact_match,none"), 0.0)
    out["leaderboard_ifeval"] = normalize_within_range(ifeval_combined(results), 0.0)
    return out


def v2_aggregate(results: Mapping) -> dict:
    """The v2 leaderboard's numbers (percent): ``leaderboard_ifeval`` as the combined strict
    accuracy (its parts as ``leaderboard_ifeval_prompt_strict`` / ``_inst_strict``),
    ``<task>_normalized`` for the six tasks and ``v2_average``, their mean."""
    out = {"leaderboard_ifeval": 100.0 * ifeval_combined(results),
           "leaderboard_ifeval_prompt_strict": 100.0 * _value(results, "leaderboard_ifeval", "prompt_level_strict_acc,none"),
           "leaderboard_ifeval_inst_strict": 100.0 * _value(results, "leaderboard_ifeval", "inst_level_strict_acc,none")}
    norm = v2_normalized(results)
    out.update({f"{t}_normalized": norm[t] for t in V2_TASKS})
    out["v2_average"] = sum(norm[t] for t in V2_TASKS) / len(V2_TASKS)
    return out
