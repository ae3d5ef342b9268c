"""What ``python run.py`` does: build the stages the method needs, evaluate, store, print, return
the metric a sweep optimises."""
from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from distill.artifacts import ArtifactStore
from distill.preflight import check_full_world
from distill.results import RunRecord
from distill.runs import (  # noqa: F401 - also read from here
    flat_config, make_logger, plain_cfg, quiet_libraries, run_group, run_name, stage_logger, varying_hparams, versions,
    wandb_offline)
from distill.validate import validate

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float:
    """Build the stages ``method`` needs, evaluate, store the record, print the tables, and return
    ``scores[optimized_metric]``.

    world=toy: the oracle scores the student and the reference models (and ``eval=all`` adds the
    toy benchmarks). world=full: the benchmarks of ``eval.benchmarks`` with the configured judge are
    the evaluation; before anything is trained, :func:`distill.preflight.check_full_world` checks
    what would otherwise fail after training (judge key, benchmark files, chat templates, the data
    sets' schemas)."""
    if cfg.get("dry_run"):  # print the plan (and the config's problems), build nothing
        from distill.plan import dry_run
        return dry_run(cfg)
    from distill import data as D
    from distill.stages import Pipeline

    t0 = time.time()
    validate(cfg)
    quiet_libraries()
    toy = cfg.world.source == "toy"
    check_metric(cfg)
    evaluation = evaluation_step(cfg)
    evaluation.check(cfg)  # fail before training when the evaluation cannot run
    store = ArtifactStore(cfg.paths.artifacts)
    pipe = Pipeline(cfg, store)
    if not toy:
        check_full_world(cfg, pipe, evaluation.preflight(cfg))
    logger = make_logger(cfg)
    try:
        student = pipe.distill(logger=logger)
        if toy:  # the reference models the oracle (and eval.benchmark_references' benchmarks) score
            references = {"teacher · SFT (π_ref)": pipe.sft("teacher"), "teacher · DPO (π_dpo)": pipe.dpo_teacher(),
                          "student · SFT (π_sft)": pipe.sft("student")}
        else:  # no oracle: the reference models are those the benchmarks also run
            builders = {"sft_teacher": ("teacher · SFT (π_ref)", lambda: pipe.sft("teacher")),
                        "dpo_teacher": ("teacher · DPO (π_dpo)", pipe.dpo_teacher),
                        "sft_student": ("student · SFT (π_sft)", lambda: pipe.sft("student"))}
            references = {builders[s][0]: builders[s][1]() for s in (cfg.eval.get("benchmark_references") or [])}
        # world=toy: the oracle; eval=all: AlpacaEval 2, Arena-Hard, MT-Bench, Open LLM (eval.step)
        bench = evaluation(cfg, pipe, store, student, references, run_name(cfg))
        scores = bench.scores()
        ref_scores = {who: {} for who in references}
        ref_scores.update(bench.reference_scores())
        details = bench.details()
        record = RunRecord(
            name=run_name(cfg), group=run_group(cfg), method=cfg.method.name, model=cfg.model.family, seed=cfg.seed,
            world=cfg.world.name, hparams={k: v for k, v in plain_cfg(cfg.method).items() if k not in ("recipe", "module")},
            scores=scores, references=ref_scores, artifacts={f"{s}": k for s, k, _ in store.events},
            used=sorted({f"{s}/{k}" for s, k, _ in store.events}),
            config=plain_cfg(cfg), started=t0, versions=versions(), benchmarks=details,
            judge=(bench.judge or None) if details is not None else None)
        path = record.write(cfg.paths.results)
        log.info("results written to %s", path)
        report_reuse(store)
        bench.print(record.to_dict())
        if logger is not None:  # ASCII keys: reference/<stage>/<metric>, e.g. reference/sft_teacher/toy/win_rate
            logger.log_metrics({**scores, **{f"reference/{references[w].stage}/{k}": v
                                             for w, s in ref_scores.items() for k, v in s.items()}})
            logger.experiment.summary.update(scores) if hasattr(logger.experiment, "summary") else None
            logger.save()  # a CSV logger writes its metrics.csv now
            bench.log(logger)
        if cfg.optimized_metric not in scores:
            raise KeyError(f"optimized_metric={cfg.optimized_metric}: this run has no such score (it has "
                           f"{sorted(scores)}); the record is in {path}")
        return float(scores[cfg.optimized_metric])
    finally:
        if logger is not None and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()


def evaluation_step(cfg: DictConfig):
    """The evaluation step after training, built from ``eval.step`` (a ``_target_``; ``conf/eval/``):
    ``check(cfg)`` before training, ``preflight(cfg)`` (world=full: problems found before training),
    and a call ``(cfg, pipe, store, student, references, name)`` returning the benchmarks' results or
    None. This is the one place ``distill`` reaches the evaluation, by name, through the config."""
    from hydra.utils import instantiate

    spec = cfg.eval.get("step")
    if spec is None:
        raise KeyError("eval.step is missing: the evaluation config (conf/eval/) names the evaluation step, e.g. "
                       "step: {_target_: eval.suite.PipelineEvaluation}")
    return instantiate(spec)


def metric_problem(cfg: DictConfig) -> str | None:
    """Why ``optimized_metric`` would not be among this run's scores (None when it will be).

    world=toy scores ``toy/*`` (the oracle) and, with ``eval=all``, ``eval/<benchmark>/*``;
    world=full scores only ``eval/<benchmark>/*`` of the benchmarks in ``eval.benchmarks``."""
    metric = str(cfg.optimized_metric)
    toy = cfg.world.source == "toy"
    benchmarks = list(cfg.eval.get("benchmarks") or [])
    full_default = "eval/alpaca_eval2/win_rate"
    if metric.startswith("toy/"):
        if toy:
            return None
        return (f"optimized_metric={metric} is a toy-world (oracle) score, which world={cfg.world.name} does not "
                f"compute; set optimized_metric={full_default} (or another eval/<benchmark>/<score>)")
    parts = metric.split("/")
    if len(parts) >= 3 and parts[0] == "eval":
        if parts[1] in benchmarks:
            return None
        return (f"optimized_metric={metric} needs the benchmark {parts[1]!r}, which eval.benchmarks={benchmarks} "
                f"does not run; add it (eval=all) or choose another metric")
    suggestion = "toy/win_rate" if toy else full_default
    return f"optimized_metric={metric}: not a score this project computes; set optimized_metric={suggestion}"


def check_metric(cfg: DictConfig) -> None:
    """Fail before training when the run could not return ``optimized_metric``."""
    from distill.validate import ConfigError

    problem = metric_problem(cfg)
    if problem:
        raise ConfigError("invalid configuration:\n  - " + problem)


def report_reuse(store: ArtifactStore) -> None:
    seen = {}
    for stage, key, reused in store.events:
        seen.setdefault((stage, key), reused)
    reused = [f"{s}/{k}" for (s, k), r in seen.items() if r]
    built = [f"{s}/{k}" for (s, k), r in seen.items() if not r]
    log.info("artifacts reused: %s", ", ".join(reused) or "none")
    log.info("artifacts built:  %s", ", ".join(built) or "none")
