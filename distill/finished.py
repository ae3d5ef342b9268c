"""A rerun of a finished run answers from its results file.

``python run.py`` with a configuration that has already run to the end (same stable result id,
:func:`distill.results.result_id`) would only reuse every artifact and recompute the same
evaluation from the same generation files. Instead, :func:`answer_finished` finds the run's
results JSON, checks that every artifact the run read is still whole (each one's manifest, file
sizes and SHA-256, as :class:`~distill.artifacts.ArtifactStore` checks a reused artifact the first
time), prints the same table and returns the same metric, without importing torch, Lightning or
transformers, loading a model or starting a W&B run (the finished run's W&B run already holds its
scores; a log line says so). The record is left as it was, except ``run.group``, set to this run's
group (:func:`distill.runs.run_group`) as a full rerun would, so that a rerun multirun's
end-of-run table and report find its jobs.

Taken only when all of this holds; otherwise the run goes the ordinary way (which reuses what is
whole and rebuilds what is not):
  * the results file ``<paths.results>/<run name>-<id[:8]>.json`` exists, holds the same id and
    lists every artifact the run read (``run.artifacts``: records written before this list existed
    take the ordinary path once, which writes it);
  * every listed artifact verifies;
  * the run has no benchmark evaluation (``eval.benchmarks`` empty: the toy world's oracle, whose
    scores are all in the record) and is not a W&B sweep agent's run (``WANDB_SWEEP_ID``: the
    agent waits for the run to log its metric);
  * ``DISTILL_RERUN`` is not ``full`` (``DISTILL_RERUN=full python run.py ...`` runs the ordinary
    way: re-evaluates, rewrites the record and logs a new W&B run).

Like artifact reuse, it trusts ``distill.artifacts.CODE_VERSION``, which is part of the result id:
a change of the code that changes results bumps it. The config checks (``distill.validate``, which
import torch and Lightning) are not repeated: the same resolved config passed them when the record
was written.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def results_path(cfg: DictConfig, name: str, rid: str) -> Path:
    """Where :func:`distill.pipeline.run` writes the record of run ``name`` with id ``rid``."""
    return Path(cfg.paths.results) / f"{name}-{rid[:8]}.json"


def finished_record(cfg: DictConfig) -> tuple[dict, Path] | None:
    """The record of this configuration's finished run and its path, when a rerun may answer from
    it (see the module docstring), else None (with the reason at debug level)."""
    from distill.artifacts import artifact_problem
    from distill.results import result_id
    from distill.runs import plain_cfg, run_name

    if os.environ.get("DISTILL_RERUN", "").lower() == "full":
        return None
    if os.environ.get("WANDB_SWEEP_ID") or cfg.eval.get("benchmarks") or cfg.world.source != "toy":
        return None
    rid = result_id(plain_cfg(cfg))
    path = results_path(cfg, run_name(cfg), rid)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    listed = (record.get("run") or {}).get("artifacts")
    if record.get("run", {}).get("id") != rid or not isinstance(listed, list) or not listed:
        log.debug("%s: not a finished record of this configuration with its artifact list", path)
        return None
    root = Path(cfg.paths.artifacts)
    for entry in listed:
        problem = artifact_problem(root / entry, checksums=True)
        if problem is not None:
            log.info("finished run %s: artifact %s does not verify (%s); running the stages", path.name, entry,
                     problem)
            return None
    return record, path


def answer_finished(cfg: DictConfig, print_table) -> float | None:
    """For a finished run (:func:`finished_record`): log what it reused, print its table with
    ``print_table([record])`` (the app passes ``eval.tables.print_table``: distill does not import
    eval) and return ``scores[optimized_metric]`` from its record; None when the run must go the
    ordinary way."""
    found = finished_record(cfg)
    if found is None:
        return None
    record, path = found
    from distill.files import atomic_write
    from distill.runs import run_group

    group = run_group(cfg)
    if record["run"].get("group") != group:  # as a full rerun would: the multirun's table and report find it
        record["run"]["group"] = group
        atomic_write(path, json.dumps(record, indent=2, default=str))

    listed = record["run"]["artifacts"]
    log.info("finished run: its results (id %s) are on file and its %d artifacts verify; nothing is built or "
             "evaluated (DISTILL_RERUN=full runs it again)", record["run"]["id"], len(listed))
    log.info("by the finished run (%s): results written to %s", record.get("written", "?"), path)
    log.info("artifacts reused: %s", ", ".join(listed))
    log.info("artifacts built:  none")
    if cfg.get("logger"):
        log.info("%s: no new run; the finished run %s already logged these scores", "/".join(cfg.logger),
                 record["run"].get("name"))
    print_table([record])
    metric = str(cfg.optimized_metric)
    if metric not in record.get("scores", {}):
        raise KeyError(f"optimized_metric={metric}: this run has no such score (it has {sorted(record['scores'])}); "
                       f"the record is in {path}")
    return float(record["scores"][metric])
