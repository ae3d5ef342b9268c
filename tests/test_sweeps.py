"""W&B sweep files, the local sweep runner (on a fake program) and the Optuna search configs."""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import CONF, ROOT, TINY, compose_cfg
from sweeps import local
from sweeps.local import SweepError

SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
SEARCHES = sorted((Path(CONF) / "hparams_search").glob("*.yaml"))
PARSER = OverridesParser.create()
HAS_OPTUNA = local.optuna_available()
NO_OPTUNA = 'Hydra\'s Optuna sweeper is not installed (pip install -e ".[sweeps]")'


def method_missing(name: str) -> str | None:
    if not (Path(CONF) / "method" / f"{name}.yaml").exists():
        return f"conf/method/{name}.yaml does not exist yet (the {name} method is not in the repository)"
    return None


# ----------------------------------------------------------------------------- the sweep files
def test_there_is_a_sweep_file_per_axis():
    assert {p.stem for p in SWEEPS} >= {"dckd_alpha", "adpa_gamma", "pad_temperature", "pad_beta", "grid"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_file_is_valid_for_wandb(path):
    spec = yaml.safe_load(path.read_text())
    for key in ("program", "method", "metric", "parameters", "command"):
        assert key in spec, f"{path.name} lacks {key}"
    assert (ROOT / spec["program"]).is_file()
    assert spec["method"] in ("grid", "random", "bayes")
    assert spec["metric"] == {"name": compose_cfg([]).optimized_metric, "goal": "maximize"}
    assert spec["command"] == ["${env}", "python", "${program}", "${args_no_hyphens}"]
    assert spec.get("name", path.stem) == path.stem
    for name, p in spec["parameters"].items():
        assert isinstance(p, dict) and len({"value", "values", "distribution"} & p.keys()) == 1, name
        if "values" in p:
            assert isinstance(p["values"], list) and p["values"], name
            assert all(isinstance(v, (int, float, str)) for v in p["values"]), name
        if "distribution" in p:
            assert spec["method"] != "grid", f"{name}: a grid needs values"
            assert isinstance(p["min"], (int, float)) and isinstance(p["max"], (int, float)) and p["min"] < p["max"]
        if spec["method"] in ("random", "bayes"):
            assert spec.get("run_cap", 0) >= 3
    axes = [n for n, p in spec["parameters"].items() if "values" in p or "distribution" in p]
    assert axes, f"{path.name} sweeps nothing"
    for name in axes:
        p = spec["parameters"][name]
        assert "distribution" in p or len(p["values"]) >= 3, f"{name}: at least 3 values per axis"
    assert local.validate_sweep(spec) == []


def test_documented_ranges():
    specs = {p.stem: yaml.safe_load(p.read_text())["parameters"] for p in SWEEPS}
    assert min(specs["dckd_alpha"]["method.alpha"]["values"]) >= 0
    assert min(specs["adpa_gamma"]["method.gamma"]["values"]) >= 0
    assert specs["pad_temperature"]["method.temperature"]["min"] > 0
    assert specs["pad_beta"]["method.beta"]["min"] > 0


@pytest.mark.parametrize("broken,problem", [
    ({"method": "grid"}, "missing required key 'program'"),
    ({"method": "annealing"}, "method must be one of"),
    ({"metric": {"name": "toy/win_rate"}}, "metric needs a name and a goal"),
    ({"command": ["python", "${program}"]}, "command must contain"),
    ({"parameters": {}}, "parameters must be a non-empty mapping"),
    ({"parameters": {"seed": {"values": []}}}, "values must be a non-empty list"),
    ({"method": "random", "parameters": {"method.beta": {"distribution": "uniform", "min": 2, "max": 1}}},
     "min (2) must be below max (1)"),
    ({"parameters": {"method.beta": {"distribution": "uniform", "min": 0.1, "max": 1.0}}}, "a grid needs value or values"),
    ({"parameters": {"method.gamma": {"values": [0.4, -1.0]}}}, "outside its range (γ ≥ 0)"),
    ({"parameters": {"method.temperature": {"values": [0.0, 1.0]}}}, "outside its range (temperature > 0)"),
    ({"parameters": {"x": {"distribution": "beta_binomial", "min": 0, "max": 1}}}, "unknown distribution"),
])
def test_validator_names_the_problem(broken, problem):
    good = {"program": "run.py", "method": "grid", "metric": {"name": "toy/win_rate", "goal": "maximize"},
            "parameters": {"seed": {"values": [0, 1]}}, "command": ["${env}", "python", "${program}", "${args_no_hyphens}"]}
    spec = {**good, **broken}
    if broken == {"method": "grid"}:
        del spec["program"]
    assert any(problem in msg for msg in local.validate_sweep(spec)), local.validate_sweep(spec)


def _points(spec: dict) -> list[dict]:
    """Grid: every point. Random/bayes: draws plus each distribution's bounds."""
    if spec["method"] == "grid":
        return local.grid_points(spec)
    points = local.random_points(spec, 6, seed=0)
    for name, p in spec["parameters"].items():
        if "min" in p:
            for bound in (p["min"], p["max"]):
                points.append({**points[0], name: bound})
    return points


def _compose_cases():
    for path in SWEEPS:
        spec = yaml.safe_load(path.read_text())
        method = spec["parameters"].get("method", {})
        for m in method.get("values", [method.get("value")]):
            yield pytest.param(path, m, id=f"{path.stem}-{m}")


@pytest.mark.parametrize("path,method", list(_compose_cases()))
def test_sweep_commands_parse_and_compose(path, method, tmp_path):
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    spec = local.load_sweep(path)
    points = [p for p in _points(spec) if p.get("method", method) == method]
    assert points
    for point in points:  # W&B's own rendering of ${args_no_hyphens} is what the local runner passes
        args = create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})["args_no_hyphens"]
        assert args == local.overrides_of(point)
        assert local.command_of(spec, args) == [sys.executable, str(ROOT / "run.py"), *args]
        for o in PARSER.parse_overrides(args):
            assert not o.is_sweep_override()
    if reason := method_missing(method):
        pytest.skip(reason)
    # compose every combination of the non-seed values (seeds rotate: each seed value is composed too)
    seen, cases = set(), []
    for point in points:
        rest = tuple((k, v) for k, v in point.items() if k != "seed")
        if rest not in seen:
            seen.add(rest)
            cases.append(point)
    seeds = [p.get("seed") for p in points]
    for i, point in enumerate(cases):
        if "seed" in point:
            point = {**point, "seed": seeds[i % len(seeds)]}
        cfg = compose_cfg(local.overrides_of(point), tmp_path)
        for k, v in point.items():
            if k == "model":
                assert cfg.model.family == v
            elif k != "method":
                assert OmegaConf.select(cfg, k) == v, (k, v)


# ----------------------------------------------------------------------------- the local runner
FAKE_PROGRAM = r'''
"""Stands in for run.py: appends its overrides to a ledger, writes a results JSON, logs its path."""
import json, os, signal, sys
from pathlib import Path

args = sys.argv[1:]
kv = dict(a.split("=", 1) for a in args if "=" in a)
key = " ".join(a for a in args if not a.startswith("hydra."))
ledger = Path(os.environ["FAKE_LEDGER"])
with open(ledger, "a") as f:
    f.write(key + "\n")
calls = len(ledger.read_text().splitlines())
if os.environ.get("FAKE_KILL_AT") and calls == int(os.environ["FAKE_KILL_AT"]):
    os.kill(os.getppid(), signal.SIGKILL)  # the sweep is killed while this run is going on
    sys.exit(1)
if any(tok in args for tok in os.environ.get("FAKE_FAIL", "").split(";") if tok):
    print("Traceback: boom")
    sys.exit(3)
flaky = os.environ.get("FAKE_FLAKY")
if flaky and flaky in args:
    marker = ledger.with_suffix(".flaky")
    if not marker.exists():
        marker.write_text("failed once")
        sys.exit(4)
beta, seed = float(kv.get("method.beta", 0.1)), int(kv.get("seed", 0))
score = 50.0 + 10.0 * beta + seed
results = Path(kv["paths.results"])
results.mkdir(parents=True, exist_ok=True)
rec = {"run": {"name": "x", "group": Path(kv["hydra.run.dir"]).name, "id": str(abs(hash(key)))},
       "method": kv.get("method", "dpo"), "model": kv.get("model", "gemma"), "seed": seed, "world": "toy",
       "hparams": {"name": kv.get("method", "dpo"), "beta": beta},
       "scores": {"toy/win_rate": score, "toy/win_rate_ci_low": score - 5, "toy/win_rate_ci_high": score + 5,
                  "toy/oracle_reward": 0.5 + beta / 10},
       "references": {"student · SFT (π_sft)": {"toy/win_rate": 50.0, "toy/oracle_reward": 0.5}},
       "config": {"paths": {"output_dir": kv["hydra.run.dir"]}}}
path = results / f"run-{abs(hash(key))}.json"
path.write_text(json.dumps(rec))
if not os.environ.get("FAKE_QUIET"):
    print(f"[2025-01-01 00:00:00,000][distill.pipeline][INFO] - results written to {path}")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A sweep file whose program is FAKE_PROGRAM, a ledger of its calls, the extra overrides."""
    prog = tmp_path / "fake_run.py"
    prog.write_text(FAKE_PROGRAM)
    ledger = tmp_path / "ledger.txt"
    monkeypatch.setenv("FAKE_LEDGER", str(ledger))
    for var in ("FAKE_KILL_AT", "FAKE_FAIL", "FAKE_FLAKY", "FAKE_QUIET"):
        monkeypatch.delenv(var, raising=False)

    def make(parameters: dict, method: str = "grid", **more) -> Path:
        spec = {"name": "fake", "program": str(prog), "method": method,
                "metric": {"name": "toy/win_rate", "goal": "maximize"}, "parameters": parameters,
                "command": ["${env}", "python", "${program}", "${args_no_hyphens}"], **more}
        path = tmp_path / "fake.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True))
        return path

    make.ledger = ledger
    make.extra = [f"paths.results={tmp_path / 'results'}"]
    make.out = tmp_path / "out"
    make.calls = lambda: ledger.read_text().splitlines() if ledger.exists() else []
    return make


GRID = {"method": {"value": "dpo"}, "method.beta": {"values": [0.1, 0.2, 0.4]}, "seed": {"values": [0, 1]}}


def _sweep(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps.local", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_grid_runs_every_combination_exactly_once(fake, capsys):
    path = fake(GRID)
    spec = local.load_sweep(path)
    entries = local.run_sweep(spec, fake.out, fake.extra)
    grid = list(itertools.product([0.1, 0.2, 0.4], [0, 1]))
    expected = [f"method=dpo method.beta={b} seed={s} {fake.extra[0]}" for b, s in grid]
    assert fake.calls() == expected
    assert [e["status"] for e in entries] == ["done"] * 6
    assert [e["metric"] for e in entries] == [50.0 + 10 * b + s for b, s in grid]
    # each run's directory is <out>/runs/<key>/<sweep name>: results' run.group is the sweep's name
    rec = json.loads(Path(entries[0]["results"]).read_text())
    assert rec["run"]["group"] == "fake" and Path(entries[0]["run_dir"]).parent.parent == fake.out / "runs"
    # a second start finds every run done and runs nothing
    again = local.run_sweep(spec, fake.out, fake.extra)
    assert len(fake.calls()) == 6 and [e["status"] for e in again] == ["done"] * 6


def test_results_found_without_the_log_line(fake, monkeypatch):
    monkeypatch.setenv("FAKE_QUIET", "1")
    spec = local.load_sweep(fake({"method.beta": {"values": [0.1, 0.2, 0.3]}}))
    entries = local.run_sweep(spec, fake.out, fake.extra)
    assert all(e["results"] and Path(e["results"]).is_file() for e in entries)
    assert [e["metric"] for e in entries] == [51.0, 52.0, 53.0]


def test_killed_sweep_restarts_with_only_the_missing_runs(fake, monkeypatch):
    path = fake(GRID)
    args = [str(path), "--out", str(fake.out), "--", *fake.extra]
    monkeypatch.setenv("FAKE_KILL_AT", "3")  # the third run kills the sweep
    first = _sweep(args)
    monkeypatch.delenv("FAKE_KILL_AT")
    assert first.returncode == -9, first.stderr[-2000:]
    before = fake.calls()
    assert len(before) == 3
    state = [json.loads(line) for line in (fake.out / "state.jsonl").read_text().splitlines()]
    assert [e["status"] for e in state] == ["started", "done", "started", "done", "started"]
    second = _sweep(args)
    assert second.returncode == 0, second.stderr[-2000:]
    after = fake.calls()[3:]
    assert after == before[2:3] + [f"method=dpo method.beta={b} seed={s} {fake.extra[0]}"
                                   for b, s in [(0.2, 1), (0.4, 0), (0.4, 1)]]
    assert "6 of 6 runs done" in second.stdout
    assert (fake.out / "report" / "report.md").is_file()


def test_failing_run_is_retried_once_then_reported(fake, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "method.beta=0.2")
    monkeypatch.setenv("FAKE_FLAKY", "method.beta=0.4")
    path = fake({"method.beta": {"values": [0.1, 0.2, 0.4]}})
    assert local.main([str(path), "--out", str(fake.out), "--", *fake.extra]) == 1
    calls = [c.split()[0] for c in fake.calls()]
    assert calls == ["method.beta=0.1", "method.beta=0.2", "method.beta=0.2", "method.beta=0.4", "method.beta=0.4"]
    last = local.State(fake.out / "state.jsonl").load()
    by_beta = {e["params"]["method.beta"]: e for e in last.values()}
    assert by_beta[0.2]["status"] == "failed" and by_beta[0.2]["attempt"] == 2 and by_beta[0.2]["rc"] == 3
    assert by_beta[0.4]["status"] == "done" and by_beta[0.4]["attempt"] == 2
    assert "boom" in Path(by_beta[0.2]["log"]).read_text()
    table = local.summary_table(local.load_sweep(path), list(by_beta.values()))
    assert table.row_count == 3 and "2 of 3 runs done" in table.title


def test_unreadable_sweep_file_is_an_error_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: [${env}, python]\n")  # a flow sequence cannot hold ${...}
    assert local.main([str(bad)]) == 2 and "bad.yaml" in capsys.readouterr().err
    assert local.main([str(tmp_path / "missing.yaml")]) == 2


def test_max_runs_and_dry_run(fake, capsys):
    path = fake(GRID)
    spec = local.load_sweep(path)
    planned = local.run_sweep(spec, fake.out, fake.extra, dry_run=True)
    assert fake.calls() == [] and [e["status"] for e in planned] == ["planned"] * 6
    assert capsys.readouterr().out.count("fake_run.py method=dpo") == 6
    part = local.run_sweep(spec, fake.out, fake.extra, max_runs=2)
    assert len(fake.calls()) == 2 and [e["status"] for e in part] == ["done"] * 2 + ["pending"] * 4


def test_random_draws_are_fixed_by_the_seed_and_in_range(fake):
    params = {"method.beta": {"distribution": "log_uniform_values", "min": 0.01, "max": 1.0},
              "method.temperature": {"distribution": "uniform", "min": 0.3, "max": 1.5},
              "top_k": {"distribution": "int_uniform", "min": 5, "max": 50},
              "seed": {"values": [0, 1, 2]}}
    spec = local.load_sweep(fake(params, method="random", run_cap=5))
    a, b = local.random_points(spec, 40, seed=0), local.random_points(spec, 40, seed=0)
    assert a == b and a != local.random_points(spec, 40, seed=1)
    assert all(0.01 <= p["method.beta"] <= 1.0 and 0.3 <= p["method.temperature"] <= 1.5 for p in a)
    assert all(isinstance(p["top_k"], int) and 5 <= p["top_k"] <= 50 and p["seed"] in (0, 1, 2) for p in a)
    betas = sorted(p["method.beta"] for p in a)
    assert betas[len(betas) // 2] < 0.3  # log-uniform: the median sits near 0.1, not near 0.5
    assert len(local.plan(spec)) == 5 and len(local.plan(spec, count=7)) == 7
    with pytest.raises(SweepError, match="needs --count"):
        local.plan({**spec, "run_cap": None})


def test_random_sweep_runs_count_draws(fake):
    path = fake({"method.beta": {"distribution": "uniform", "min": 0.1, "max": 0.9}}, method="random")
    assert local.main([str(path), "--out", str(fake.out), "--count", "3", "--no-report", "--", *fake.extra]) == 0
    assert len(fake.calls()) == 3 and len(set(fake.calls())) == 3


# ----------------------------------------------------------------------------- bayes through Optuna
def test_bayes_search_space_in_hydra_syntax():
    spec = local.load_sweep(ROOT / "sweeps" / "pad_beta.yaml")
    space = local.optuna_search_space(spec)
    assert space == ["method=pad", "method.beta=tag(log, interval(1.0, 30.0))", "seed=0", "group=pad_beta"]
    parsed = {o.get_key_element(): o for o in PARSER.parse_overrides(space)}
    assert parsed["method.beta"].is_interval_sweep() and "log" in parsed["method.beta"].value().tags
    cmd = local.optuna_command(spec, Path("/tmp/x"), ["logger=none"], n_trials=7)
    assert cmd[2] == "-m" and "hydra/sweeper=optuna" in cmd and "hydra.sweeper.n_trials=7" in cmd
    assert "hydra.sweeper.direction=maximize" in cmd and "optimized_metric=toy/win_rate" in cmd
    assert "hydra.sweeper.storage=sqlite:////tmp/x/optuna.db" in cmd
    PARSER.parse_overrides(cmd[3:])


def test_bayes_without_the_optuna_sweeper_names_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(local, "optuna_available", lambda: False)
    assert local.main([str(ROOT / "sweeps" / "pad_beta.yaml"), "--dry-run"]) == 2
    assert 'pip install -e ".[sweeps]"' in capsys.readouterr().err


FAKE_HYDRA_APP = r'''
"""A Hydra app with run.py's interface (method group, seed, optimized_metric, results JSON)."""
import json, logging
from pathlib import Path
import hydra
from hydra.core.hydra_config import HydraConfig

log = logging.getLogger("distill.pipeline")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg) -> float:
    score = 60.0 - (cfg.method.beta - 8.0) ** 2 / 10
    rec = {"run": {"name": "x", "group": Path(HydraConfig.get().sweep.dir).name, "id": str(cfg.method.beta)},
           "method": cfg.method.name, "model": "gemma", "seed": cfg.seed, "world": "toy",
           "hparams": {"name": cfg.method.name, "beta": cfg.method.beta}, "scores": {cfg.optimized_metric: score},
           "references": {}, "config": {"paths": {"output_dir": HydraConfig.get().runtime.output_dir}}}
    out = Path(cfg.paths.results) / f"pad-{cfg.method.beta:.6f}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec))
    log.info("results written to %s", out)
    return score


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def hydra_app(tmp_path):
    """A Hydra app with run.py's interface, and pad_beta.yaml pointed at it."""
    app = tmp_path / "app"
    (app / "conf" / "method").mkdir(parents=True)
    (app / "app.py").write_text(FAKE_HYDRA_APP)
    (app / "conf" / "config.yaml").write_text(
        "defaults:\n  - _self_\n  - method: pad\nseed: 0\ngroup: null\noptimized_metric: toy/win_rate\n"
        f"paths:\n  results: {tmp_path / 'results'}\n")
    (app / "conf" / "method" / "pad.yaml").write_text("name: pad_lppd\nbeta: 10.0\n")
    spec = {**local.load_sweep(ROOT / "sweeps" / "pad_beta.yaml"), "name": "fake_beta"}
    return spec, str(app / "app.py"), tmp_path / "out"


def _bayes(hydra_app, **kw) -> list[dict]:
    spec, program, out = hydra_app
    return local.run_bayes(spec, out, [f"paths.results={out.parent / 'results'}"], program=program, say=lambda s: None,
                           **kw)


@pytest.mark.skipif(not HAS_OPTUNA, reason=NO_OPTUNA)
def test_bayes_sweep_runs_through_optuna(hydra_app):
    entries = _bayes(hydra_app, count=3, max_runs=2)
    spec, _, out = hydra_app
    assert local.study_trials(out, "fake_beta") == (2, 2)
    assert len(entries) == 2 and all(e["status"] == "done" and 1.0 <= float(e["params"]["method.beta"]) <= 30.0
                                      for e in entries)
    recs = [json.loads(Path(e["results"]).read_text()) for e in entries]
    assert all(r["run"]["group"] == "fake_beta" and r["scores"]["toy/win_rate"] == e["metric"]
               for r, e in zip(recs, entries))
    assert len(_bayes(hydra_app, count=2)) == 2 and len(list((out / "logs").iterdir())) == 1  # nothing left to run


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OPTUNA, reason=NO_OPTUNA)
def test_bayes_sweep_resumes_with_the_missing_trials(hydra_app):
    first = _bayes(hydra_app, count=2)
    entries = _bayes(hydra_app, count=3)
    assert local.study_trials(hydra_app[2], "fake_beta") == (3, 3) and len(entries) == 3
    betas = [e["params"]["method.beta"] for e in entries]
    assert betas[:2] == [e["params"]["method.beta"] for e in first] and len(set(betas)) == 3


# ----------------------------------------------------------------------------- hparams_search
def test_hparams_search_files_are_global_optuna_searches():
    assert {p.stem for p in SEARCHES} >= {"adpa_optuna", "dckd_optuna", "pad_optuna"}
    for path in SEARCHES:
        text = path.read_text()
        assert text.startswith("# @package _global_\n"), path.name
        cfg = yaml.safe_load(text)
        assert {"override /hydra/sweeper": "optuna"} in cfg["defaults"]
        sweeper = cfg["hydra"]["sweeper"]
        assert sweeper["direction"] == "maximize" and sweeper["n_trials"] > 0
        assert sweeper["storage"].startswith("sqlite:///${paths.log_dir}/")
        assert "optimized_metric" not in cfg   # the world's: a metric that exists where the search runs
        overrides = PARSER.parse_overrides([f"{k}={v}" for k, v in sweeper["params"].items()])
        assert overrides and all(o.is_sweep_override() for o in overrides)


def _search_cases():
    for path in SEARCHES:
        method = next(d["override /method"] for d in yaml.safe_load(path.read_text())["defaults"]
                      if "override /method" in d)
        yield pytest.param(path.stem, method, id=path.stem)


@pytest.mark.skipif(not HAS_OPTUNA, reason=NO_OPTUNA)
@pytest.mark.parametrize("name,method", list(_search_cases()))
def test_hparams_search_composes_with_the_optuna_sweeper(name, method, tmp_path):
    if reason := method_missing(method):
        pytest.skip(reason)
    cfg = compose_cfg([f"hparams_search={name}"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.storage == f"sqlite:///{tmp_path / 'logs'}/optuna/{sweeper.study_name}.db"
    assert cfg.hydra.callbacks.optuna_storage_dir._target_ == "sweeps.optuna.StorageDir"
    for key, value in sweeper.params.items():
        assert OmegaConf.select(cfg, key) is not None, f"{name}: {key} is not in the composed config"
        interval = PARSER.parse_override(f"{key}={value}").value()
        for bound in (interval.start, interval.end):  # the search's bounds are valid settings
            assert OmegaConf.select(compose_cfg([f"hparams_search={name}", f"{key}={bound}"], tmp_path), key) == bound


def test_storage_dir_callback_makes_the_sqlite_folder(tmp_path):
    from sweeps.optuna import StorageDir, sqlite_path

    db = tmp_path / "logs" / "optuna" / "x.db"
    StorageDir().on_multirun_start(OmegaConf.create({"hydra": {"sweeper": {"storage": f"sqlite:///{db}"}}}))
    assert db.parent.is_dir()
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("postgresql://h/db") is None


# ----------------------------------------------------------------------------- the real run.py
@pytest.mark.slow
def test_local_sweep_runs_the_real_program(tmp_path):
    """Two DPO runs of run.py (a β axis) on the shrunken toy world; the second reuses the teachers."""
    sweep = tmp_path / "dpo_beta.yaml"
    spec = {**yaml.safe_load((ROOT / "sweeps" / "dpo_beta.yaml").read_text()), "name": "dpo_beta"}
    sweep.write_text(yaml.safe_dump({**spec, "parameters": {"method": {"value": "dpo"},
                                                            "method.beta": {"values": [0.1, 0.3]}}}))
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "sweeps.local", str(sweep), "--out", str(tmp_path / "sweep"), "--",
                           "logger=none", *TINY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = local.State(tmp_path / "sweep" / "state.jsonl").load()
    assert [e["status"] for e in state.values()] == ["done", "done"]
    recs = [json.loads(Path(e["results"]).read_text()) for e in state.values()]
    assert [r["hparams"]["beta"] for r in recs] == [0.1, 0.3] and {r["run"]["group"] for r in recs} == {"dpo_beta"}
    assert all(e["metric"] == r["scores"]["toy/win_rate"] for e, r in zip(state.values(), recs))
    assert re.search(r"artifacts reused: .*sft_teacher/", Path(list(state.values())[1]["log"]).read_text())
    report = tmp_path / "sweep" / "report"
    assert (report / "report.md").is_file() and (report / "sensitivity_dpo_beta_toy_win_rate.png").is_file()
