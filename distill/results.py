"""The results store (one JSON per run) and bootstrap confidence intervals (the tables: ``eval.tables``)."""
from __future__ import annotations

import json
import math
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from distill.files import atomic_write

log = logging.getLogger(__name__)

SECRET_HINTS = ("api_key", "apikey", "token", "secret", "password")


def wandb_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the W&B server (``WANDB_BASE_URL``, default api.wandb.ai) accepts a connection within
    ``timeout_s``: an online run with no network would otherwise wait ~90 s in ``wandb.init`` and
    then stop. Behind a proxy (``HTTPS_PROXY``) the probe is skipped (the proxy decides)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout_s).close()
        return True
    except OSError:
        return False


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (resampling items with replacement)."""
    import numpy as np  # here: a finished run's rerun (distill/finished.py) never needs it

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def t95(n: int) -> float:
    """The two-sided 95% quantile of Student's t with n − 1 degrees of freedom (n ≥ 2)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, n - 1))
    except ImportError:  # scipy comes with scikit-learn; the normal quantile is the fallback
        return 1.959964


def mean_ci_t(values) -> tuple[float, float, float]:
    """Mean of ``values`` and its Student's t 95% interval (sample std, ddof 1; n − 1 degrees of
    freedom); one value gives (mean, nan, nan)."""
    x = [float(v) for v in values]
    if not x:
        return float("nan"), float("nan"), float("nan")
    m = sum(x) / len(x)
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = t95(len(x)) * math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) / math.sqrt(len(x))
    return m, m - half, m + half


def scrub(obj):
    """Drop values whose key looks like a secret (the results store never holds keys)."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if any(h in str(k).lower() for h in SECRET_HINTS) and isinstance(v, str)
                    and not str(k).endswith("_env") else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


class IncompleteAnswersError(ValueError):
    """A generation or judgment file that does not answer exactly the prompts it is scored on."""


def check_answers(rows: list[dict], prompts: list[dict], path, fields: tuple[str, ...] = ("prompt",),
                  answer: str = "response") -> list[dict]:
    """``rows`` (read from ``path``) must answer ``prompts`` one to one, in order: the same count,
    the same ``fields`` (the prompt, or its id) in each row, and a string ``answer``. Returns
    ``rows``; otherwise raises :class:`IncompleteAnswersError` naming the file and the first
    mismatch, so that no score is computed over a partial or foreign set."""
    fix = f"delete {Path(path).parent} (it is rebuilt) or rerun the stage that wrote it"
    if len(rows) != len(prompts):
        raise IncompleteAnswersError(f"{path}: {len(rows)} answers for {len(prompts)} prompts; scores need every "
                                     f"prompt answered once; {fix}")
    for i, (row, p) in enumerate(zip(rows, prompts), 1):
        for f in fields:
            if row.get(f) != p.get(f):
                raise IncompleteAnswersError(f"{path}:{i}: answers another prompt than prompt {i} ({f} "
                                             f"{str(row.get(f))[:60]!r} vs {str(p.get(f))[:60]!r}); {fix}")
        if not isinstance(row.get(answer), str):
            raise IncompleteAnswersError(f"{path}:{i}: no {answer!r} string; {fix}")
    return rows


# Config keys that cannot change a run's scores: left out of its result id, so the same config
# writes the same results file (``paths.output_dir`` holds the run's time).
ID_EXCLUDED = ("paths", "logger", "dry_run")


def result_id(config: dict) -> str:
    """A stable id of a run's resolved config (without :data:`ID_EXCLUDED`, nor ``eval.step``: which
    code runs the evaluation, not what it scores)."""
    from distill.artifacts import fingerprint

    kept = {k: v for k, v in config.items() if k not in ID_EXCLUDED}
    if isinstance(kept.get("eval"), dict):
        kept["eval"] = {k: v for k, v in kept["eval"].items() if k != "step"}
    return fingerprint(kept)


def write_result(results_dir: str | os.PathLike, name: str, record: dict) -> Path:
    """Write one run's record atomically as ``<results_dir>/<name>.json`` (a rerun of the same
    config replaces it)."""
    record = scrub({**record, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return atomic_write(Path(results_dir) / f"{name}.json", json.dumps(record, indent=2, default=str))


@dataclass
class RunRecord:
    """One run in the results store, ``<results>/<name>-<id>.json``: what ``python run.py``
    (:mod:`distill.pipeline`) and ``python -m eval`` (:mod:`eval.standalone`) write, and what the
    report, the multirun table and the local sweeps read back (:func:`load_records`). ``id`` hashes
    the resolved ``config`` (:func:`result_id`), so rerunning a config replaces its file."""

    name: str
    group: str
    method: str
    model: str
    seed: Any
    world: str
    hparams: dict
    scores: dict
    config: dict                 # the resolved config, without Hydra's own node
    started: float               # time.time() when the run started
    versions: dict
    references: dict = field(default_factory=dict)   # reference model label -> its scores
    artifacts: Optional[dict] = None                 # stage -> key of every artifact the run used
    used: Optional[list] = None                      # "stage/key" of every artifact read (a rerun verifies them)
    benchmarks: Optional[dict] = None                # the benchmarks' details (files, judge, variants)
    judge: Optional[dict] = None                     # the judge's request, cache and cost counts

    @property
    def id(self) -> str:
        return result_id(self.config)

    def to_dict(self) -> dict:
        rec = {"run": {"name": self.name, "group": self.group, "id": self.id,
                       "seconds": round(time.time() - self.started, 1),
                       **({"artifacts": self.used} if self.used is not None else {})},
               "method": self.method, "model": self.model, "seed": self.seed, "world": self.world,
               "hparams": self.hparams, "scores": self.scores, "references": self.references}
        rec.update({k: v for k, v in (("artifacts", self.artifacts), ("benchmarks", self.benchmarks),
                                      ("judge", self.judge)) if v is not None})
        return {**rec, "config": self.config, "versions": self.versions}

    def write(self, results_dir: str | os.PathLike) -> Path:
        """Write it atomically (secrets scrubbed) as ``<results_dir>/<name>-<id[:8]>.json``."""
        return write_result(results_dir, f"{self.name}-{self.id[:8]}", self.to_dict())


def load_records(sources: Iterable[str | os.PathLike], group: str | None = None) -> list[dict]:
    """Results JSONs from files and folders (``*.json`` directly inside); files that are not run
    records are skipped; ``group`` keeps the records whose ``run.group`` is that name."""
    out = []
    for src in sources:
        src = Path(src)
        paths = sorted(src.glob("*.json")) if src.is_dir() else [src]
        for p in paths:
            try:
                rec = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log.warning("skipping %s: %s", p, e)
                continue
            if not (isinstance(rec, dict) and {"method", "model", "scores"} <= rec.keys()):
                continue
            if group is None or rec.get("run", {}).get("group") == group:
                rec["_source"] = str(p)
                out.append(rec)
    return out


# ----------------------------------------------------------------------------- the group of a run
# Set by :class:`eval.callbacks.MultirunTable` when a multirun starts, for its jobs (the jobs see
# only their own overrides, not the multirun's command line).
MULTIRUN_GROUP_ENV = "DISTILL_MULTIRUN_GROUP"
GROUP_MAX = 120  # W&B keeps group names up to 128 characters


def overridden(overrides, key: str) -> str | None:
    """The value ``key=<value>`` sets in a list of Hydra overrides (None if it is not set there)."""
    for o in overrides or ():
        k, sep, v = str(o).partition("=")
        if sep and k.lstrip("+~") == key:
            return v
    return None


def overrides_name(overrides) -> str:
    """A multirun's name from its command line: its overrides as given, in order
    (``experiment=smoke method=dpo,dckd seed=0,1``), shortened with a hash past ``GROUP_MAX``."""
    name = " ".join(str(o) for o in overrides or ())
    if len(name) > GROUP_MAX:
        from distill.artifacts import fingerprint

        name = f"{name[:GROUP_MAX - 10].rstrip()}~{fingerprint(name)[:8]}"
    return name


def named_group(explicit, hydra_overrides) -> str | None:
    """The group a run or a multirun is given by name, the first that applies: ``explicit`` (the
    config's ``group``) when set; a W&B sweep agent's sweep id (``WANDB_SWEEP_ID``);
    ``hydra.job.name=<name>`` among the Hydra overrides. None when none applies."""
    if explicit not in (None, ""):
        return str(explicit)
    if os.environ.get("WANDB_SWEEP_ID"):
        return os.environ["WANDB_SWEEP_ID"]
    return overridden(hydra_overrides, "hydra.job.name") or None


def multirun_group(config) -> str:
    """The group of a multirun's jobs, from the multirun's own config (Hydra callbacks get it):
    ``group=<name>`` when given; else a W&B sweep agent's sweep id; else ``hydra.job.name=<name>``
    when given; else the folder of ``hydra.sweep.dir=<dir>`` when given; else the multirun's
    overrides (:func:`overrides_name`, which names the experiment, the methods and the values swept);
    else the sweep folder's name."""
    from omegaconf import OmegaConf

    hydra_overrides = OmegaConf.select(config, "hydra.overrides.hydra", default=None)
    named = named_group(OmegaConf.select(config, "group", default=None), hydra_overrides)
    if named:
        return named
    sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir", default="") or "multirun"))
    if overridden(hydra_overrides, "hydra.sweep.dir"):
        return sweep_dir.name
    return overrides_name(OmegaConf.select(config, "hydra.overrides.task", default=None)) or sweep_dir.name
