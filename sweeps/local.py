"""Run a W&B sweep file with no server: the same runs, one after another, resumable.

    python -m sweeps.local sweeps/adpa_gamma.yaml                  # every grid point
    python -m sweeps.local sweeps/pad_temperature.yaml --count 8   # 8 random draws (fixed seed)
    python -m sweeps.local sweeps/pad_beta.yaml --count 16         # Bayesian, via Hydra's Optuna sweeper
    python -m sweeps.local sweeps/dckd_alpha.yaml --dry-run        # list the commands, run nothing
    python -m sweeps.local sweeps/dckd_alpha.yaml -- data.sizes.eval=24 stages.distill.steps=4

What it does with a sweep file (``program``, ``method``, ``metric``, ``parameters``, ``command``):

- grid: every combination of the parameters' values, in file order (the first parameter varies
  slowest); random: ``--count`` draws (default: the file's ``run_cap``) from the parameters'
  distributions with ``--seed`` (default 0), so the same command draws the same runs; bayes: one
  ``python run.py -m`` with ``hydra/sweeper=optuna``, the search space written in Hydra's sweep
  syntax, ``--count`` trials and an SQLite study in the output folder.
- Each grid or random run is the sweep's ``command`` with W&B's ``${args_no_hyphens}`` (``key=value``,
  exactly as the W&B agent writes them), then the overrides given after ``--``, then
  ``hydra.run.dir=<out>/runs/<key>/<sweep name>``, in a subprocess of the current Python. ``<key>``
  hashes the run's overrides. The run directory is named after the sweep because the pipeline
  takes a run's group (``run.group`` in its results JSON, and the W&B group) from that name.
  Every run uses the configured ``paths.artifacts``, so teachers, SFT students and caches are
  built once and reused.
- ``<out>/state.jsonl`` (default ``<out>`` = ``logs/sweeps/<file stem>/``) gets one line per event
  of a run, keyed by ``<key>``: started, done (with its metric and results JSON), failed. A second
  start skips the runs whose last line says done, so a killed sweep finishes only the missing runs
  (a killed run itself resumes from its last checkpoint). A run that fails is tried once more,
  then reported as failed; a restart tries failed runs again.
- Each run's results JSON is read from the results store (``distill.results.load_records``): the
  record whose ``config.paths.output_dir`` is the run's directory (never a line of its log). The metric is that record's
  ``scores[<metric.name>]``. At the end ``eval.report.write_report`` writes the tables and plots of
  exactly these records into ``<out>/report/``, and a table lists every run's overrides, status
  and metric.
- bayes: the study (``<out>/optuna.db``, named after the sweep) is what resumes: a start runs
  ``--count`` minus its complete trials, with the sampler seeded past the trials already drawn; jobs
  go to ``<out>/runs/bayes-<time>/<sweep name>/`` (so ``run.group`` is the sweep's name again); each
  job's overrides are read from its folder (``.hydra/overrides.yaml``) and its results from the store.
  A multirun that fails is started once more (it continues the study), then reported.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import yaml

from distill.results import load_records

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
ARGS_MACROS = ("${args_no_hyphens}", "${args_override_hydra}", "${args_append_hydra}")
DISTRIBUTIONS = ("constant", "categorical", "uniform", "int_uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "normal")


def ranges(spec: dict, name: str) -> list:
    """The documented ranges of the sweep parameter ``name`` (``method.<key>``): the
    :class:`~distill.methods.plugin.Hparam` of that key in each method the sweep runs (its ``method``
    parameter), or in every registered method declaring the key when the sweep does not name one."""
    if not name.startswith("method.") or name.count(".") != 1:
        return []
    from distill.methods.plugin import find, registry

    key = name.split(".", 1)[1]
    p = (spec.get("parameters") or {}).get("method")
    swept = ([p["value"]] if isinstance(p, dict) and "value" in p else
             list(p["values"]) if isinstance(p, dict) and isinstance(p.get("values"), list) else [])
    plugins = [(m, find(str(m))) for m in swept] if swept else [(q.names[0], q) for q in registry()]
    out = {}
    for method, plugin in plugins:
        h = plugin.hparams(str(method)).get(key) if plugin is not None else None
        if h is not None and h.kind != "bool":
            out[(h.lo, h.lo_open, h.hi, h.hi_open, h.kind)] = h
    return list(out.values())


OPTUNA_MISSING = ('bayes sweeps run locally through Hydra\'s Optuna sweeper, which is not installed; '
                  'install it with: pip install -e ".[sweeps]"')


class SweepError(ValueError):
    """A sweep file that W&B (or this runner) would refuse; the message names the problem."""


# ----------------------------------------------------------------------------- the sweep file
def load_sweep(path: str | os.PathLike) -> dict:
    """Read and validate a sweep file; its ``name`` defaults to the file's stem."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SweepError(f"{path}: {e}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: a sweep file is a YAML mapping")
    spec.setdefault("name", Path(path).stem)
    problems = validate_sweep(spec)
    if problems:
        raise SweepError(f"{path}: " + "; ".join(problems))
    return spec


def param_kind(p: dict) -> str:
    """The distribution of one parameter, inferred the way W&B infers it when none is given."""
    if "distribution" in p:
        return p["distribution"]
    if "value" in p:
        return "constant"
    if "values" in p:
        return "categorical"
    if "min" in p and "max" in p:
        return "int_uniform" if all(isinstance(p[k], int) for k in ("min", "max")) else "uniform"
    if "mu" in p:
        return "normal"
    return "unknown"


def validate_sweep(spec: dict) -> list[str]:
    """Problems W&B would report (required keys, parameter shapes), plus the documented ranges."""
    out = []
    for key in ("program", "method", "metric", "parameters", "command"):
        if key not in spec:
            out.append(f"missing required key {key!r}")
    if out:
        return out
    if not isinstance(spec["program"], str) or not spec["program"]:
        out.append("program must be a file name")
    if spec["method"] not in METHODS:
        out.append(f"method must be one of {', '.join(METHODS)}, not {spec['method']!r}")
    metric = spec["metric"]
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str) or metric.get("goal") not in GOALS:
        out.append("metric needs a name and a goal (maximize or minimize)")
    cmd = spec["command"]
    if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
        out.append("command must be a list of strings")
    elif "${program}" not in cmd or not any(m in cmd for m in ARGS_MACROS):
        out.append(f"command must contain ${{program}} and one of {', '.join(ARGS_MACROS)}")
    if "run_cap" in spec and (not isinstance(spec["run_cap"], int) or spec["run_cap"] < 1):
        out.append("run_cap must be a positive integer")
    params = spec["parameters"]
    if not isinstance(params, dict) or not params:
        return out + ["parameters must be a non-empty mapping"]
    for name, p in params.items():
        out += [f"parameter {name!r}: {msg}" for msg in _param_problems(spec["method"], name, p, ranges(spec, name))]
    return out


def _param_problems(method: str, name: str, p, hparams: list = ()) -> list[str]:
    if not isinstance(p, dict):
        return ["must be a mapping with value, values or a distribution"]
    if "parameters" in p:
        return ["nested parameters are not supported"]
    kind = param_kind(p)
    if kind not in DISTRIBUTIONS:
        return [f"unknown distribution {kind!r} (known: {', '.join(DISTRIBUTIONS)})"]
    out = []
    if kind == "constant" and "value" not in p:
        out.append("constant needs a value")
    if kind == "categorical":
        vals = p.get("values")
        if not isinstance(vals, list) or not vals:
            out.append("values must be a non-empty list")
        elif not all(isinstance(v, (str, int, float, bool)) for v in vals):
            out.append("values must be strings, numbers or booleans")
        elif "probabilities" in p and (len(p["probabilities"]) != len(vals) or abs(sum(p["probabilities"]) - 1) > 1e-6):
            out.append("probabilities must match values and sum to 1")
    if kind in ("uniform", "int_uniform", "q_uniform", "log_uniform", "log_uniform_values"):
        lo, hi = p.get("min"), p.get("max")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
            out.append(f"{kind} needs numeric min and max")
        elif not lo < hi:
            out.append(f"min ({lo}) must be below max ({hi})")
        elif kind == "int_uniform" and not (isinstance(lo, int) and isinstance(hi, int)):
            out.append("int_uniform needs integer min and max")
        elif kind == "log_uniform_values" and lo <= 0:
            out.append("log_uniform_values needs min > 0")
    if kind == "normal" and not all(isinstance(p.get(k, 0.0 if k == "mu" else 1.0), (int, float)) for k in ("mu", "sigma")):
        out.append("normal needs numeric mu and sigma")
    if method == "grid" and kind not in ("constant", "categorical", "int_uniform"):
        out.append(f"a grid needs value or values, not a {kind} distribution")
    for h in hparams if not out else ():
        text = h.bound_text()
        if kind == "normal" and (h.lo is not None or h.hi is not None):
            out.append(f"a normal distribution leaves its range ({text})")
        elif kind != "log_uniform":  # its min and max are logarithms; exp(·) is always positive
            numbers = {"constant": [p.get("value")], "categorical": p.get("values")}.get(
                kind, [p.get("min"), p.get("max")])
            bad = [v for v in numbers if not h.ok(v)]
            if bad:
                out.append(f"outside its range ({text}): {bad}")
    return out


# ----------------------------------------------------------------------------- runs of a sweep
def grid_points(spec: dict) -> list[dict]:
    """Every combination of the parameters' values, the first parameter varying slowest."""
    axes = []
    for name, p in spec["parameters"].items():
        kind = param_kind(p)
        vals = [p["value"]] if kind == "constant" else (
            list(range(p["min"], p["max"] + 1)) if kind == "int_uniform" else list(p["values"]))
        axes.append([(name, v) for v in vals])
    return [dict(combo) for combo in itertools.product(*axes)]


def draw(p: dict, rng: random.Random):
    """One draw from a parameter's distribution (W&B's meaning of each distribution)."""
    kind = param_kind(p)
    if kind == "constant":
        return p["value"]
    if kind == "categorical":
        return rng.choices(p["values"], weights=p.get("probabilities"))[0]
    if kind == "int_uniform":
        return rng.randint(p["min"], p["max"])
    if kind == "uniform":
        x = rng.uniform(p["min"], p["max"])
    elif kind == "q_uniform":
        q = p.get("q", 1.0)
        x = round(rng.uniform(p["min"], p["max"]) / q) * q
    elif kind == "log_uniform":  # min and max are natural logs of the bounds
        x = math.exp(rng.uniform(p["min"], p["max"]))
    elif kind == "log_uniform_values":
        x = math.exp(rng.uniform(math.log(p["min"]), math.log(p["max"])))
    else:  # normal
        x = rng.gauss(p.get("mu", 0.0), p.get("sigma", 1.0))
    return float(f"{x:.6g}")


def random_points(spec: dict, count: int, seed: int = 0) -> list[dict]:
    """``count`` draws with a fixed seed; a draw equal to an earlier one is drawn again (up to 100 times)."""
    rng, points, seen = random.Random(seed), [], set()
    for _ in range(count):
        for _ in range(100):
            point = {name: draw(p, rng) for name, p in spec["parameters"].items()}
            if run_key(overrides_of(point)) not in seen:
                break
        else:
            break  # the space holds fewer distinct points than asked for
        seen.add(run_key(overrides_of(point)))
        points.append(point)
    return points


def overrides_of(point: dict) -> list[str]:
    """``key=value`` per parameter, as W&B's ``${args_no_hyphens}`` writes them."""
    return [f"{k}={v}" for k, v in point.items()]


def run_key(overrides: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:12]


def resolve_program(program: str) -> str:
    """The sweep's program, relative to the current folder as for the W&B agent, else to the repo."""
    for base in (Path.cwd(), ROOT):
        if (base / program).is_file():
            return str((base / program).resolve())
    raise SweepError(f"program {program!r} is neither in {Path.cwd()} nor in {ROOT}")


def command_of(spec: dict, overrides: list[str], program: str | None = None) -> list[str]:
    """The sweep's ``command`` with W&B's macros filled in: ``${env}`` is dropped (the environment
    is inherited), ``python``/``${interpreter}`` is this Python, ``${program}`` the program's path."""
    out = []
    for part in spec["command"]:
        if part == "${env}":
            continue
        if part in ("python", "python3", "${interpreter}"):
            out.append(sys.executable)
        elif part == "${program}":
            out.append(program or resolve_program(spec["program"]))
        elif part == "${args_no_hyphens}":
            out += overrides
        elif part == "${args_override_hydra}":
            out += ["++" + o for o in overrides]
        elif part == "${args_append_hydra}":
            out += ["+" + o for o in overrides]
        else:
            out.append(part)
    return out


def hydra_quote(value: str) -> str:
    """A value Hydra's override grammar reads back verbatim (quoted when it holds special characters)."""
    if re.fullmatch(r"[\w./\-+:@~]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ----------------------------------------------------------------------------- state
class State:
    """``state.jsonl``: one JSON line per event of a run; the last line of a key is its status."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict]:
        last = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                last[entry["key"]] = entry
        return last

    def append(self, entry: dict) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return entry


@dataclass
class Outcome:
    rc: int


def subprocess_runner(cmd: list[str], log_path: Path, echo: bool = False) -> Outcome:
    """Run ``cmd``, its output into ``log_path`` (and the console with ``echo``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=env, errors="replace") as proc:
        log.write("$ " + " ".join(cmd) + "\n")
        for line in proc.stdout:
            log.write(line)
            if echo:
                sys.stdout.write(line)
        rc = proc.wait()
    return Outcome(rc)


def find_results(run_dir: Path, overrides: list[str]) -> str | None:
    """The results JSON whose ``config.paths.output_dir`` is ``run_dir`` (the latest written), in the
    results stores the run can have written to (a ``paths.results``/``paths.root_dir`` override,
    $DISTILL_ROOT, ./results)."""
    dirs = [Path(o.split("=", 1)[1]) for o in overrides if o.startswith("paths.results=")]
    dirs += [Path(o.split("=", 1)[1]) / "results" for o in overrides if o.startswith("paths.root_dir=")]
    if os.environ.get("DISTILL_ROOT"):
        dirs.append(Path(os.environ["DISTILL_ROOT"]) / "results")
    dirs.append(Path.cwd() / "results")
    for d in (d for d in dirs if d.is_dir()):
        mine = [r for r in load_records([d]) if _output_dir(r) == run_dir.resolve()]
        if mine:
            return max(mine, key=lambda r: (str(r.get("written", "")), Path(r["_source"]).stat().st_mtime))["_source"]
    return None


def _output_dir(record: dict) -> Path | None:
    out = (record.get("config") or {}).get("paths", {}).get("output_dir")
    return Path(out).resolve() if out else None


def multirun_jobs(sweep_dir: Path) -> list[tuple[Path, list[str]]]:
    """``(job folder, its overrides)`` of a Hydra multirun's jobs, in the order they started (each job
    writes its overrides to ``<job folder>/.hydra/overrides.yaml`` when it starts)."""
    files = sorted(sweep_dir.glob("**/.hydra/overrides.yaml"), key=lambda p: p.stat().st_mtime) \
        if sweep_dir.is_dir() else []
    return [(f.parent.parent, [str(o) for o in (yaml.safe_load(f.read_text()) or [])]) for f in files]


def metric_of(results_path: str | None, metric: str, section: str = "scores") -> float | None:
    """``scores[metric]`` of a results JSON (or another section's value, e.g. ``run``/``seconds``)."""
    if not results_path or not Path(results_path).is_file():
        return None
    value = json.loads(Path(results_path).read_text()).get(section, {}).get(metric)
    return float(value) if value is not None else None


# ----------------------------------------------------------------------------- grid and random
Runner = Callable[[list[str], Path, bool], Outcome]


def plan(spec: dict, count: int | None = None, seed: int = 0) -> list[dict]:
    """The parameter points of a grid or random sweep."""
    if spec["method"] == "grid":
        return grid_points(spec)
    count = count or spec.get("run_cap")
    if not count:
        raise SweepError(f"a random sweep needs --count (or run_cap in {spec['name']}'s file)")
    return random_points(spec, count, seed)


def run_sweep(spec: dict, out: Path, extra: list[str] = (), *, count: int | None = None, seed: int = 0,
              max_runs: int | None = None, dry_run: bool = False, runner: Runner = subprocess_runner,
              echo: bool = False, program: str | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Run the missing runs of a grid or random sweep; return one entry per planned run (its last state)."""
    state = State(out / "state.jsonl")
    metric = spec["metric"]["name"]
    program = program or resolve_program(spec["program"])
    runs = []
    for point in plan(spec, count, seed):
        overrides = overrides_of(point) + list(extra)
        key = run_key(overrides)
        run_dir = out / "runs" / key / spec["name"]
        cmd = command_of(spec, overrides, program) + [f"hydra.run.dir={hydra_quote(str(run_dir))}"]
        runs.append({"key": key, "params": point, "overrides": overrides, "cmd": cmd, "run_dir": str(run_dir)})
    done = state.load()
    entries, launched = [], 0
    for i, run in enumerate(runs, 1):
        prev = done.get(run["key"])
        label = " ".join(overrides_of(run["params"]))
        if prev and prev["status"] == "done":
            entries.append(prev)
            continue
        if dry_run or (max_runs is not None and launched >= max_runs):
            if dry_run:
                say(" ".join(run["cmd"]))
            entries.append({**_entry(run), "status": "planned" if dry_run else "pending",
                            "attempt": 0, "metric": None})
            continue
        launched += 1
        for attempt in (1, 2):
            state.append({**_entry(run), "status": "started", "attempt": attempt})
            say(f"[{i}/{len(runs)}] {label}  (try {attempt}) ...")
            t0 = time.time()
            log_path = out / "logs" / f"{run['key']}.{attempt}.log"
            outcome = runner(run["cmd"], log_path, echo)
            seconds = round(time.time() - t0, 1)
            results = find_results(Path(run["run_dir"]), run["overrides"]) if outcome.rc == 0 else None
            status = "done" if outcome.rc == 0 else ("failed" if attempt == 2 else "retry")
            entry = state.append({**_entry(run), "status": status, "attempt": attempt, "rc": outcome.rc,
                                  "results": results, "metric": metric_of(results, metric),
                                  "seconds": seconds, "log": str(log_path)})
            tail = f"{metric} = {entry['metric']}" if status == "done" else f"exit code {outcome.rc}, log: {log_path}"
            say(f"[{i}/{len(runs)}] {label}  {status}: {tail} ({seconds} s)")
            if status != "retry":
                entries.append(entry)
                break
    return entries


def _entry(run: dict) -> dict:
    return {"key": run["key"], "params": run["params"], "overrides": run["overrides"], "run_dir": run["run_dir"]}


# ----------------------------------------------------------------------------- bayes (Optuna)
def optuna_available() -> bool:
    """Whether Hydra's Optuna sweeper is installed (the ``sweeps`` extra)."""
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:  # no hydra_plugins namespace at all
        return False


def optuna_search_space(spec: dict) -> list[str]:
    """The sweep's parameters in Hydra's sweep syntax, as the Optuna sweeper reads them."""
    out = []
    for name, p in spec["parameters"].items():
        kind = param_kind(p)
        if kind == "constant":
            out.append(f"{name}={_hydra_value(p['value'])}")
        elif kind == "categorical":
            out.append(f"{name}=choice({', '.join(_hydra_value(v) for v in p['values'])})")
        elif kind == "uniform":
            out.append(f"{name}=interval({float(p['min'])}, {float(p['max'])})")
        elif kind == "int_uniform":  # an integer interval is Optuna's inclusive IntUniformDistribution
            out.append(f"{name}=interval({p['min']}, {p['max']})")
        elif kind == "q_uniform":
            out.append(f"{name}=range({float(p['min'])}, {float(p['max'])}, {float(p.get('q', 1.0))})")
        elif kind == "log_uniform_values":
            out.append(f"{name}=tag(log, interval({float(p['min'])}, {float(p['max'])}))")
        elif kind == "log_uniform":
            out.append(f"{name}=tag(log, interval({math.exp(p['min']):.6g}, {math.exp(p['max']):.6g}))")
        else:
            raise SweepError(f"parameter {name!r}: the Optuna sweeper has no {kind} distribution")
    return out


def _hydra_value(v) -> str:
    return hydra_quote(v) if isinstance(v, str) else str(v)


def optuna_command(spec: dict, out: Path, extra: list[str], n_trials: int, seed: int = 0,
                   program: str | None = None) -> list[str]:
    """``python run.py -m <search space> hydra/sweeper=optuna ...``: a study named after the sweep in
    ``<out>/optuna.db``, the sweep's metric as ``optimized_metric``, one trial at a time."""
    storage = f"sqlite:///{(out / 'optuna.db').resolve()}"
    sweep_dir = out.resolve() / "runs" / f"bayes-{time.strftime('%Y%m%d-%H%M%S')}" / spec["name"]
    return [sys.executable, program or resolve_program(spec["program"]), "-m", *optuna_search_space(spec),
            *extra, "hydra/sweeper=optuna", f"hydra.sweeper.direction={spec['metric']['goal']}",
            f"hydra.sweeper.study_name={spec['name']}", f"hydra.sweeper.storage={hydra_quote(storage)}",
            f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.n_jobs=1", f"hydra.sweeper.sampler.seed={seed}",
            f"optimized_metric={hydra_quote(spec['metric']['name'])}", f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}"]


def study_trials(out: Path, study: str) -> tuple[int, int]:
    """(complete, all) trials of the study in ``<out>/optuna.db`` (0, 0 when there is none yet).
    Read with sqlite3 from Optuna's ``studies``/``trials`` tables: importing optuna takes seconds."""
    db = out / "optuna.db"
    if not db.exists():
        return 0, 0
    import sqlite3

    with sqlite3.connect(db) as con:
        try:
            rows = con.execute("SELECT t.state FROM trials t JOIN studies s ON t.study_id = s.study_id "
                               "WHERE s.study_name = ?", (study,)).fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            return 0, 0
    return sum(state == "COMPLETE" for (state,) in rows), len(rows)


def completed_trials(out: Path, study: str) -> int:
    return study_trials(out, study)[0]


def run_bayes(spec: dict, out: Path, extra: list[str] = (), *, count: int | None = None, seed: int = 0,
              max_runs: int | None = None, dry_run: bool = False, runner: Runner = subprocess_runner,
              echo: bool = False, program: str | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Run the trials a Bayesian sweep still lacks through Hydra's Optuna sweeper (resumes the study)."""
    if not optuna_available():
        raise SweepError(OPTUNA_MISSING)
    count = count or spec.get("run_cap")
    if not count:
        raise SweepError(f"a bayes sweep needs --count (or run_cap in {spec['name']}'s file)")
    state, metric = State(out / "state.jsonl"), spec["metric"]["name"]
    out.mkdir(parents=True, exist_ok=True)  # SQLite creates the database file, not its folder
    for attempt in (1, 2):
        complete, started = study_trials(out, spec["name"])
        todo = count - complete if max_runs is None else min(count - complete, max_runs)
        if todo <= 0:
            break
        # a resumed study gets a sampler seeded past its earlier draws, or it would propose them again
        cmd = optuna_command(spec, out, list(extra), todo, seed + started, program)
        if dry_run:
            say(" ".join(cmd))
            break
        say(f"optuna: {todo} trial(s) to go of {count} (try {attempt}) ...")
        t0 = time.time()
        log_path = out / "logs" / f"optuna-{time.strftime('%Y%m%d-%H%M%S')}.{attempt}.log"
        outcome = runner(cmd, log_path, echo)
        sweep_dir = Path(next(a for a in cmd if a.startswith("hydra.sweep.dir=")).split("=", 1)[1].strip("'\""))
        for i, (job_dir, overrides) in enumerate(multirun_jobs(sweep_dir)):
            results = find_results(job_dir, [*overrides, *extra])
            state.append({"key": run_key([log_path.name, str(i), *overrides]), "params": _params_of(overrides, spec),
                          "overrides": overrides,
                          "status": "done" if results else "failed",
                          "attempt": attempt, "results": results, "metric": metric_of(results, metric),
                          "seconds": metric_of(results, "seconds", "run"), "log": str(log_path)})
        if outcome.rc == 0:
            break
        say(f"optuna: exit code {outcome.rc} after {time.time() - t0:.0f} s, log: {log_path}")
    return list(state.load().values())


def _params_of(overrides: list[str], spec: dict) -> dict:
    kv = dict(o.split("=", 1) for o in overrides if "=" in o)
    return {k: kv[k] for k in spec["parameters"] if k in kv}


# ----------------------------------------------------------------------------- summary and report
def summary_table(spec: dict, entries: list[dict]):
    """Each run's overrides (the parameters that vary; the fixed ones are in the caption), status,
    tries and metric."""
    from eval.benchmarks.base import Column
    from eval.tables import build

    metric = spec["metric"]["name"]
    names = list(dict.fromkeys(k for e in entries for k in e["params"]))
    varying = [k for k in names if len({json.dumps(e["params"].get(k)) for e in entries}) > 1] or names
    fixed = " ".join(f"{k}={entries[0]['params'][k]}" for k in names if k not in varying and entries)
    columns = [Column("#", lambda e: str(e["_i"])),
               Column("overrides", lambda e: " ".join(f"{k}={e['params'][k]}" for k in varying if k in e["params"]),
                      justify="left", no_wrap=True),
               Column("status", lambda e: e["status"], justify="left"),
               Column("tries", lambda e: str(e.get("attempt", 0))),
               Column(metric, lambda e: "—" if e.get("metric") is None else f"{e['metric']:.3f}"),
               Column("seconds", lambda e: str(e.get("seconds", "")))]
    return build(f"Sweep {spec['name']} ({spec['method']}): {sum(e['status'] == 'done' for e in entries)} of "
                 f"{len(entries)} runs done", (), [((), {**e, "_i": i}) for i, e in enumerate(entries, 1)], columns,
                 caption=f"every run: {fixed}" if fixed else None)


def report(entries: list[dict], out: Path) -> dict:
    """Tables and plots of the sweep's finished runs (their recorded results JSONs) in ``<out>/report``."""
    from eval.report import write_report  # imported when used: matplotlib and pandas are slow to import

    paths = [e["results"] for e in entries if e["status"] == "done" and e.get("results")]
    records = load_records([p for p in paths if Path(p).is_file()])
    return write_report(records, out / "report") if records else {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(prog="python -m sweeps.local", description=__doc__.split("\n\n")[0],
                                 epilog="Hydra overrides after -- are added to every run.")
    ap.add_argument("file", help="a W&B sweep file, e.g. sweeps/adpa_gamma.yaml")
    ap.add_argument("--out", type=Path, help="output folder (default: logs/sweeps/<file stem>)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--max-runs", type=int, help="launch at most N runs (or trials) in this call")
    ap.add_argument("--count", type=int, help="random/bayes: the number of runs (default: the file's run_cap)")
    ap.add_argument("--seed", type=int, default=0, help="random/bayes: the seed of the draws (default 0)")
    ap.add_argument("--no-report", action="store_true", help="skip the report at the end")
    ap.add_argument("-v", "--verbose", action="store_true", help="show each run's output")
    args = ap.parse_args(argv)
    out = args.out or Path("logs") / "sweeps" / Path(args.file).stem
    try:
        spec = load_sweep(args.file)
        fn = run_bayes if spec["method"] == "bayes" else run_sweep
        entries = fn(spec, out, extra, count=args.count, seed=args.seed, max_runs=args.max_runs,
                     dry_run=args.dry_run, echo=args.verbose)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the same command finishes the missing runs (state: {out / 'state.jsonl'})",
              file=sys.stderr)
        return 130
    from rich.console import Console

    console = Console()
    if not args.dry_run and not args.no_report:
        written = report(entries, out)
        for kind, path in written.items():
            if not kind.startswith("plot/") or path.suffix == ".png":
                console.print(f"report: {path}")
    console.print(summary_table(spec, entries))
    return 1 if any(e["status"] == "failed" for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
