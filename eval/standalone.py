"""Evaluate one checkpoint, or a model outputs file, with the benchmarks, outside a training run
(``python -m eval``).

The checkpoint is a folder written by :func:`distill.models.save_pretrained` (e.g.
``artifacts/distill/<key>/model``) or a hub id. Scores go where a run's go: a results JSON in
``paths.results`` (``method`` = the checkpoint's name, ``model`` = its family when its config names
one), the W&B run summary (run name ``eval-<checkpoint>``) with per-question tables, and a printed
table.

``model_outputs=<file>`` instead of a checkpoint: an AlpacaEval ``model_outputs.json`` is scored by
AlpacaEval 2, a FastChat answer ``.jsonl`` by Arena-Hard or MT-Bench (the one whose question ids it
answers, or ``model_outputs_benchmark=``), with the configured judge; no model is loaded, and the
other selected benchmarks are skipped (they need a checkpoint).
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
    from distill.runs import make_logger, plain_cfg, quiet_libraries, run_group, versions
    from distill.results import RunRecord
    from distill.stages import Pipeline
    from eval.suite import (Suite, artifact_target, check_config, checkpoint_target, details_of,
                            flat_scores, headline, log_tables, print_benchmark_table)

    from eval.suite import ModelOutputs, outputs_target, read_model_outputs_file

    t0 = time.time()
    given = cfg.get("model_outputs")
    if cfg.get("checkpoint") and given:
        raise ValueError("name either model=<checkpoint> or model_outputs=<file>, not both")
    if not cfg.get("checkpoint") and not given:
        raise ValueError("name the model to evaluate: python -m eval model=<checkpoint folder or hub id>, or its "
                         "answers: python -m eval model_outputs=<AlpacaEval model_outputs.json or FastChat .jsonl>")
    if not cfg.eval.get("benchmarks"):
        raise ValueError("no benchmarks to run: eval.benchmarks is empty (e.g. eval.benchmarks=[mt_bench])")
    check_config(cfg)
    outputs: ModelOutputs | None = read_model_outputs_file(given) if given else None
    selected = list(cfg.eval.benchmarks)
    if outputs is not None:
        candidates = _outputs_candidates(cfg, outputs, selected)
    if cfg.world.source != "toy":  # the benchmarks' files before any model is loaded
        from omegaconf import OmegaConf, open_dict

        from distill.preflight import PreflightError
        from eval.suite import benchmark_problems

        checked = cfg
        if outputs is not None:
            checked = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
            with open_dict(checked):
                checked.eval.benchmarks = candidates
        problems = benchmark_problems(checked)
        if problems:
            raise PreflightError("the evaluation cannot run:\n  - " + "\n  - ".join(problems))
    quiet_libraries()
    if outputs is not None:
        target, info = outputs_target(outputs), {}
    else:
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
            benches = _outputs_benchmarks(suite, outputs, candidates, selected) if outputs is not None else None
            results = suite.run(target, benches)
            stats = suite.judge_stats()
        scores = flat_scores(results)
        record = RunRecord(
            name=run_name, group=run_group(cfg), method=target.name, model=info.get("family") or target.name,
            seed=cfg.eval.seed, world=cfg.world.name, scores=scores,
            hparams=({"model_outputs": str(given)} if outputs is not None else {"checkpoint": str(cfg.checkpoint)}),
            benchmarks={"student": details_of(results)}, judge=stats, config=plain_cfg(cfg), started=t0,
            versions=versions())
        path = record.write(cfg.paths.results)
        log.info("results written to %s", path)
        print_benchmark_table([(target.name, scores)], title=f"Benchmarks: {cfg.checkpoint or given}"
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


def _outputs_candidates(cfg: DictConfig, outputs, selected: list[str]) -> list[str]:
    """The benchmarks that may score ``outputs`` (``model_outputs_benchmark=`` or the file's kind),
    within ``eval.benchmarks``."""
    forced = cfg.get("model_outputs_benchmark")
    if forced:
        if forced not in outputs.benchmarks():
            raise ValueError(f"model_outputs_benchmark={forced}: {outputs.path} is a {outputs.kind} outputs file, "
                             f"scored by {' or '.join(outputs.benchmarks())}")
        candidates = [forced]
    else:
        candidates = list(outputs.benchmarks())
    usable = [b for b in candidates if b in selected]
    if not usable:
        raise ValueError(f"{outputs.path} is scored by {' or '.join(candidates)}, which eval.benchmarks={selected} "
                         f"leaves out; add it (e.g. eval=all)")
    return usable


def _outputs_benchmarks(suite, outputs, candidates: list[str], selected: list[str]) -> list[str]:
    """The one benchmark whose question set ``outputs`` answers; the other selected ones are skipped."""
    from eval.suite import OutputsMismatch

    if len(candidates) == 1:
        chosen = candidates[0]
    else:  # a FastChat file: MT-Bench or Arena-Hard, by its question ids (MT-Bench's set is the cheaper to read)
        problems = {}
        for bench in sorted(candidates, key=lambda b: b != "mt_bench"):
            plugin = suite.benchmark(bench)
            problem = outputs.mismatch(plugin.expected(plugin.load()))
            if problem is None:
                break
            problems[bench] = problem
        else:
            raise OutputsMismatch(
                f"{outputs.path} answers none of the configured question sets ("
                + "; ".join(f"{b}: {p}" for b, p in problems.items())
                + "). Fix: give the answers to one of these question sets, or name the benchmark with "
                  "model_outputs_benchmark=arena_hard|mt_bench to see its mismatch alone")
        chosen = bench
    for b in selected:
        if b != chosen:
            log.info("benchmark %s skipped: it needs a checkpoint (model=...), and model_outputs=%s gives only "
                     "%s answers", b, outputs.path, chosen)
    log.info("model_outputs=%s: scored by %s", outputs.path, chosen)
    return [chosen]
