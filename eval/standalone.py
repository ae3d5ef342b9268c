"""Evaluate one checkpoint with the benchmarks, outside a training run (``python -m eval``).

The checkpoint is a folder written by :func:`distill.models.save_pretrained` (e.g.
``artifacts/distill/<key>/model``) or a hub id. Scores go where a run's go: a results JSON in
``paths.results`` (``method`` = the checkpoint's name, ``model`` = its family when its config names
one), the W&B run summary (run name ``eval-<checkpoint>``) with per-question tables, and a printed
table.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def run_standalone(cfg: DictConfig) -> float | None:
    """Run ``eval.benchmarks`` on ``cfg.checkpoint``; return the first benchmark's headline score."""
    from distill.artifacts import ArtifactStore
    from distill.pipeline import make_logger, plain_cfg, quiet_libraries, run_group, versions
    from distill.results import result_id, write_result
    from distill.stages import Pipeline
    from eval.suite import (Suite, artifact_target, check_config, checkpoint_target, details_of,
                            flat_scores, headline, log_tables, print_benchmark_table)

    t0 = time.time()
    if not cfg.get("checkpoint"):
        raise ValueError("name the model to evaluate: python -m eval model=<checkpoint folder or hub id>")
    if not cfg.eval.get("benchmarks"):
        raise ValueError("no benchmarks to run: eval.benchmarks is empty (e.g. eval.benchmarks=[mt_bench])")
    check_config(cfg)
    if cfg.world.source != "toy":  # the benchmarks' files before any model is loaded
        from distill.preflight import PreflightError, benchmark_problems

        problems = benchmark_problems(cfg)
        if problems:
            raise PreflightError("the evaluation cannot run:\n  - " + "\n  - ".join(problems))
    quiet_libraries()
    target, info = checkpoint_target(str(cfg.checkpoint), cfg.world.dtype)
    store = ArtifactStore(cfg.paths.artifacts)
    toy = cfg.world.source == "toy"
    pipe = Pipeline(cfg, store) if toy else None
    reference = None
    if toy:
        stages = {"sft_teacher": lambda: pipe.sft("teacher"), "dpo_teacher": pipe.dpo_teacher,
                  "sft_student": lambda: pipe.sft("student")}
        ref_stage = cfg.eval.toy.reference

        def toy_reference():
            return artifact_target(f"{ref_stage}-{cfg.model.family}", stages[ref_stage](), cfg.world.dtype)

        reference = toy_reference

    run_name = f"eval-{target.name}"
    logger = make_logger(cfg, run_name, job_type="eval")
    try:
        with Suite(cfg, store, Path(cfg.paths.output_dir) / "eval", task=pipe.task() if toy else None,
                   reference=reference) as suite:
            results = suite.run(target)
            stats = suite.judge_stats()
        scores = flat_scores(results)
        record = {"run": {"name": run_name, "group": run_group(cfg), "id": result_id(plain_cfg(cfg)),
                          "seconds": round(time.time() - t0, 1)},
                  "method": target.name, "model": info.get("family") or target.name, "seed": cfg.eval.seed,
                  "world": cfg.world.name, "hparams": {"checkpoint": str(cfg.checkpoint)}, "scores": scores,
                  "references": {}, "benchmarks": {"student": details_of(results)}, "judge": stats,
                  "config": plain_cfg(cfg), "versions": versions()}
        path = write_result(cfg.paths.results, f"{run_name}-{record['run']['id'][:8]}", record)
        log.info("results written to %s", path)
        print_benchmark_table([(target.name, scores)], title=f"Benchmarks: {cfg.checkpoint}"
                              + (" (toy variants)" if toy else ""))
        if logger is not None:
            logger.log_metrics(scores)
            if hasattr(logger.experiment, "summary"):
                logger.experiment.summary.update(scores)
            log_tables(logger, results)
        return headline(scores, next(iter(results)))[1]  # the first benchmark's headline score
    finally:
        if logger is not None and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()
