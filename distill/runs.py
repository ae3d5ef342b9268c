"""A run's name, group, tags and loggers: what W&B and the results store call a run.

Used by the pipeline (:mod:`distill.pipeline`), by the training stages that log W&B runs of their
own (:mod:`distill.stages`), by ``python -m eval`` and by the finished-run check; it imports
nothing of the pipeline or the stages, so each of them imports it at module level.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from distill.files import plain
from distill.results import scrub

log = logging.getLogger(__name__)


def wandb_offline() -> bool:
    """W&B runs offline unless an API key is set (env or ``wandb login``) and the server is
    reachable, or WANDB_MODE says online."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun")
    netrc = Path.home() / ".netrc"
    if not (os.environ.get("WANDB_API_KEY") or (netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"))):
        return True
    from distill.results import wandb_reachable

    if not wandb_reachable():  # a key but no network: offline now rather than a 90 s wait and a stop
        log.warning("W&B: an API key is set but the W&B server cannot be reached; logging offline (sync later "
                    "with `wandb sync`), or set WANDB_MODE=offline to skip this check")
        return True
    return False


def run_name(cfg: DictConfig) -> str:
    """``<method>-<family>-s<seed>`` and the hyperparameters this run sets on the command line (the
    method group's overrides, a sweep's parameters): ``adpa-gemma-s0-gamma0.2``."""
    base = f"{cfg.method.name}-{cfg.model.family}-s{cfg.seed}"
    extra = [f"{k}{v:.4g}" if isinstance(v, float) else f"{k}{v}" for k, v in varying_hparams(cfg).items()]
    return _safe_name("-".join([base, *extra]))


# overrides that are already part of the name (or say nothing about the hyperparameters)
_NAME_KEYS = {"method", "model", "seed", "method.name", "method.recipe", "method.module", "group"}


def task_overrides(cfg: DictConfig) -> list[str]:
    """The Hydra overrides of this job (a multirun job: its own point of the sweep)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:  # composed without @hydra.main (tests): compose(..., return_hydra_config=True)
        return list(OmegaConf.select(cfg, "hydra.overrides.task", default=None) or [])


def sweep_parameters() -> dict:
    """The parameters a W&B sweep agent gave this run (``WANDB_SWEEP_PARAM_PATH``:
    ``{name: {value: v}}``), or {} outside a sweep."""
    path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    if not path or not Path(path).is_file():
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in data.items()
            if k != "wandb_version" and not str(k).startswith("_")}


def varying_hparams(cfg: DictConfig) -> dict:
    """``{short name: value}`` of the method hyperparameters (``method.*``) and sweep parameters set
    by this run's overrides, in their order: ``method.gamma=0.2`` -> ``gamma: 0.2``."""
    keys = []
    for o in task_overrides(cfg):
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" in o and (key.startswith("method.") or key in sweep_parameters()) and key not in _NAME_KEYS:
            keys.append(key)
    keys += [k for k in sweep_parameters() if k not in keys and k not in _NAME_KEYS]
    out = {}
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None or OmegaConf.is_config(value):
            continue
        out[key.rsplit(".", 1)[-1]] = value
    return out


def _safe_name(text: str, limit: int = 120) -> str:
    """ASCII letters, digits and ``._=+-`` only (a run name is also a file name)."""
    import re

    text = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")
    return text[:limit]


def quiet_libraries() -> None:
    """Keep the console to our own progress bars and lines (distill.progress): no tqdm bars from
    lm-eval, datasets or alpaca_eval (in a log file they are carriage-return noise)."""
    import transformers

    os.environ.setdefault("TQDM_DISABLE", "1")

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)


def plain_cfg(node) -> dict:
    """The resolved config as plain data, without Hydra's own node."""
    return plain(node, drop_hydra=True)


def run_group(cfg: DictConfig) -> str:
    """The name runs are grouped by (W&B group, ``run.group`` of the results JSON, the report's
    ``--group``), the first that applies:

    1. ``group=<name>`` on the command line (or in an experiment file);
    2. a W&B sweep agent's sweep id (``WANDB_SWEEP_ID``; the sweep files set ``group`` to their
       name as a constant parameter, so 1. applies to them);
    3. ``hydra.job.name=<name>`` on the command line;
    4. a multirun: the folder of ``hydra.sweep.dir=<dir>`` when given, else the multirun's overrides
       as typed (``experiment=smoke method=dpo,dckd seed=0,1``; :func:`distill.results.multirun_group`);
    5. a single run: the folder of ``hydra.run.dir=<dir>`` when given (a ``python -m sweeps.local``
       run: the sweep's name), else the ``experiment=`` preset's name, else the run's own folder name."""
    from distill.results import MULTIRUN_GROUP_ENV, named_group, overridden

    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except Exception:  # composed without @hydra.main (tests)
        hc = None
    named = named_group(OmegaConf.select(cfg, "group", default=None), hc.overrides.hydra if hc else None)
    if named:
        return named
    if hc is None:
        return "adhoc"
    if hc.mode.name == "MULTIRUN":
        if not overridden(hc.overrides.hydra, "hydra.sweep.dir") and os.environ.get(MULTIRUN_GROUP_ENV):
            return os.environ[MULTIRUN_GROUP_ENV]
        return Path(hc.sweep.dir).name
    if not overridden(hc.overrides.hydra, "hydra.run.dir") and hc.runtime.choices.get("experiment"):
        return str(hc.runtime.choices.get("experiment"))
    return Path(hc.runtime.output_dir).name


def flat_config(node) -> dict:
    """The resolved config (without Hydra's node, secrets scrubbed) as one level of dotted keys:
    ``{"method.name": "adpa", "method.gamma": 0.1, "seed": 0, ...}``. A W&B sweep locks the keys it
    sets (``method``, ``seed``, ``method.gamma``); given to ``wandb.init`` this config sits under
    them, so the full method block survives and the swept values are the ones the run used."""
    def walk(prefix: str, value, out: dict) -> dict:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, out)
        else:
            out[prefix] = value
        return out

    return walk("", scrub(plain_cfg(node)), {})


def run_tags(cfg: DictConfig, *extra: str) -> list[str]:
    """W&B tags: method, model family, world (and ``extra``, e.g. the stage)."""
    tags = [OmegaConf.select(cfg, "method.name"), OmegaConf.select(cfg, "model.family"),
            OmegaConf.select(cfg, "world.name"), *extra]
    return list(dict.fromkeys(str(t) for t in tags if t))


def make_logger(cfg: DictConfig, name: str | None = None, **wandb_kwargs):
    """The configured logger. A W&B run is named ``name`` (default :func:`run_name`), grouped by
    :func:`run_group` (``logger.wandb.group`` when set), gets ``job_type`` (default ``student``),
    tags (:func:`run_tags`) and the flat config (:func:`flat_config`) at ``wandb.init``, is offline
    without an API key, and gets the other ``wandb_kwargs``."""
    if not cfg.get("logger"):
        return None
    from hydra.utils import instantiate

    lc = cfg.logger
    if "wandb" in lc:
        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_kwargs.setdefault("job_type", "student")
        tags = run_tags(cfg, *wandb_kwargs.pop("tags", []))
        offline = wandb_offline()
        if offline:  # explicit: wandb reads WANDB_MODE (which Lightning sets) only when its first run starts
            wandb_kwargs.setdefault("mode", "offline")
        make = instantiate(lc.wandb, group=lc.wandb.group or run_group(cfg), name=name or run_name(cfg),
                           offline=offline, tags=tags, _partial_=True, **wandb_kwargs)
        return make(config=flat_config(cfg))  # instantiate's own first argument is named config
    return instantiate(next(iter(lc.values())))


# training stages that log a W&B run of their own when they are built, and its job type
STAGE_JOB_TYPES = {"sft_teacher": "teacher", "dpo_teacher": "teacher", "sft_student": "student"}
# the config keys a stage's run records (what determines the stage; method and seed do not)
_STAGE_KEYS = ("data.", "model.", "world.", "trainer.", "optimizer.", "scheduler.", "stages.max_length")


def stage_logger(cfg: DictConfig, stage: str):
    """A W&B run of its own for the training stage ``stage`` (``sft_teacher``, ``dpo_teacher``:
    job type ``teacher``; ``sft_student``: ``student``), named ``<stage>-<family>``, in this run's
    group; None for other stages, other loggers and ranks other than 0. The caller finishes it.

    Created with ``reinit="create_new"``: the run that asked for the stage may already have its own
    W&B run, which must stay open (and stay ``wandb.run``)."""
    lc = cfg.get("logger") or {}
    if stage not in STAGE_JOB_TYPES or "wandb" not in lc:
        return None
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return None
    import wandb
    from hydra.utils import instantiate

    os.environ.setdefault("WANDB_SILENT", "true")
    w = lc.wandb
    Path(w.save_dir).mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in flat_config(cfg).items()
              if k.startswith(_STAGE_KEYS) or k.startswith(f"stages.{stage}.")}
    run = wandb.init(project=w.project, entity=w.entity, group=w.group or run_group(cfg),
                     name=_safe_name(f"{stage}-{cfg.model.family}"), job_type=STAGE_JOB_TYPES[stage],
                     tags=[cfg.model.family, cfg.world.name, stage], config={"stage": stage, **config},
                     dir=str(w.save_dir), mode="offline" if wandb_offline() else "online",
                     reinit="create_new")
    return instantiate(w, experiment=run)


def versions() -> dict:
    import lightning
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "lightning": lightning.__version__}
