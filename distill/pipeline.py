"""What ``python run.py`` does: build the stages the method needs, evaluate, store, print, return
the metric a sweep optimises."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from distill import data as D
from distill.artifacts import ArtifactStore, fingerprint
from distill.results import bootstrap_ci, print_table, scrub, write_result
from distill.stages import Pipeline
from distill.validate import validate

log = logging.getLogger(__name__)


def wandb_offline() -> bool:
    """W&B runs offline unless an API key is set (env or ``wandb login``) or WANDB_MODE says online."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun")
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path.home() / ".netrc"
    return not (netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def oracle_scores(task, rows: list[dict], baseline: list[dict] | None, n_boot: int, seed: int) -> dict:
    """Mean oracle reward; win rate (ties ½) against ``baseline``'s responses with a bootstrap CI."""
    from distill.toy.task import parse  # the oracle's own format test: a list wrapped in "[ ... ]"

    rewards = [task.reward(r["response"], r["answer"]) for r in rows]
    scores = {"toy/oracle_reward": float(np.mean(rewards)),
              "toy/format_rate": float(np.mean([parse(r["response"])[1] for r in rows])),
              "toy/correctness": float(np.mean([task.correctness(r["response"], r["answer"]) for r in rows]))}
    if baseline is not None:
        wins = [100 * task.judge(a["response"], b["response"], a["answer"]) for a, b in zip(rows, baseline)]
        lo, hi = bootstrap_ci(wins, n_boot=n_boot, seed=seed)
        scores.update({"toy/win_rate": float(np.mean(wins)), "toy/win_rate_ci_low": lo, "toy/win_rate_ci_high": hi})
    return scores


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.method.name}-{cfg.model.family}-s{cfg.seed}"


def run(cfg: DictConfig) -> float:
    if cfg.get("dry_run"):  # print the plan (and the config's problems), build nothing
        from distill.plan import dry_run
        return dry_run(cfg)
    t0 = time.time()
    validate(cfg)
    quiet_libraries()
    if cfg.eval.get("benchmarks"):  # fail before training when the evaluation cannot run
        from eval.suite import check_config

        check_config(cfg)
    store = ArtifactStore(cfg.paths.artifacts)
    pipe = Pipeline(cfg, store)
    logger = make_logger(cfg)
    try:
        student = pipe.distill(logger=logger)
        references = {"teacher · SFT (π_ref)": pipe.sft("teacher"), "teacher · DPO (π_dpo)": pipe.dpo_teacher(),
                      "student · SFT (π_sft)": pipe.sft("student")}
        task = pipe.task()
        gens = {who: D.read_jsonl(pipe.generations(a).path / "generations.jsonl") for who, a in references.items()}
        base = gens["student · SFT (π_sft)"]
        ec = cfg.eval
        ref_scores = {who: oracle_scores(task, g, base, ec.n_boot, cfg.seed) for who, g in gens.items()}
        mine = D.read_jsonl(pipe.generations(student).path / "generations.jsonl")
        scores = oracle_scores(task, mine, base, ec.n_boot, cfg.seed)
        bench = None
        if ec.get("benchmarks"):  # eval=all: AlpacaEval 2, Arena-Hard, MT-Bench, Open LLM (eval/suite.py)
            from eval.suite import run_pipeline_benchmarks

            bench = run_pipeline_benchmarks(cfg, pipe, store, student, references, run_name(cfg))
            scores.update(bench.scores())
            for who, s in bench.reference_scores().items():
                ref_scores[who].update(s)
        group = run_group(cfg)
        record = {"run": {"name": run_name(cfg), "group": group, "id": fingerprint(plain_cfg(cfg)),
                          "seconds": round(time.time() - t0, 1)},
                  "method": cfg.method.name, "model": cfg.model.family, "seed": cfg.seed, "world": cfg.world.name,
                  "hparams": {k: v for k, v in plain_cfg(cfg.method).items() if k not in ("recipe", "module")},
                  "scores": scores, "references": ref_scores,
                  "artifacts": {f"{s}": k for s, k, _ in store.events}, "config": plain_cfg(cfg),
                  "versions": versions()}
        if bench is not None:
            record["benchmarks"] = bench.details()
        path = write_result(cfg.paths.results, f"{run_name(cfg)}-{record['run']['id'][:8]}", record)
        log.info("results written to %s", path)
        report_reuse(store)
        print_table([record])
        if bench is not None:
            bench.print(f"student · {cfg.method.name}")
        if logger is not None:
            logger.log_metrics({**scores, **{f"reference/{w}/{k}": v for w, s in ref_scores.items() for k, v in s.items()}})
            logger.experiment.summary.update(scores) if hasattr(logger.experiment, "summary") else None
            if bench is not None:
                bench.log(logger)
        return float(scores[cfg.optimized_metric])
    finally:
        if logger is not None and hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()


def quiet_libraries() -> None:
    """Keep the console to our own progress bars and logs."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)


def plain_cfg(node) -> dict:
    """The resolved config as plain data, without Hydra's own node."""
    if "hydra" in node:
        node = node.copy()
        with open_dict(node):
            node.pop("hydra")
    return OmegaConf.to_container(node, resolve=True)


def run_group(cfg: DictConfig) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return Path(hc.sweep.dir).name if hc.mode.name == "MULTIRUN" else Path(hc.runtime.output_dir).name
    except Exception:  # composed without @hydra.main (tests)
        return "adhoc"


def make_logger(cfg: DictConfig, name: str | None = None, **wandb_kwargs):
    """The configured logger; a W&B run is named ``name`` (default: method-family-seed), grouped by
    the multirun, offline without an API key, and gets ``wandb_kwargs`` (e.g. ``job_type``)."""
    if not cfg.get("logger"):
        return None
    from hydra.utils import instantiate

    lc = cfg.logger
    if "wandb" in lc:
        os.environ.setdefault("WANDB_SILENT", "true")
        logger = instantiate(lc.wandb, group=lc.wandb.group or run_group(cfg), name=name or run_name(cfg),
                             offline=wandb_offline(), **wandb_kwargs)
        logger.log_hyperparams(scrub(plain_cfg(cfg)))
        return logger
    return instantiate(next(iter(lc.values())))


def report_reuse(store: ArtifactStore) -> None:
    seen = {}
    for stage, key, reused in store.events:
        seen.setdefault((stage, key), reused)
    reused = [f"{s}/{k}" for (s, k), r in seen.items() if r]
    built = [f"{s}/{k}" for (s, k), r in seen.items() if not r]
    log.info("artifacts reused: %s", ", ".join(reused) or "none")
    log.info("artifacts built:  %s", ", ".join(built) or "none")


def versions() -> dict:
    import lightning
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "lightning": lightning.__version__}
