"""``distill-bench``: the dispatcher, and configuration errors without a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, compose_cfg
from distill_bench import cli


def test_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["distill-bench"] == "distill_bench.cli:main"


def test_usage_and_unknown_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "report", "sweep"):
        assert f"  {command} " in out
    assert cli.main([]) == cli.CONFIG_ERROR_EXIT
    assert cli.main(["trian"]) == cli.CONFIG_ERROR_EXIT
    assert "unknown command 'trian'; choose one of train, eval, report, sweep" in capsys.readouterr().err


def test_sweep_and_report_dispatch_to_their_modules(capsys, tmp_path):
    assert cli.main(["sweep", str(ROOT / "sweeps" / "dckd_alpha.yaml"), "--dry-run", "--no-report",
                     "--out", str(tmp_path / "sw")]) == 0
    out = capsys.readouterr().out
    assert f"{ROOT / 'run.py'} method=dckd method.alpha=" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "--help"])
    assert e.value.code == 0 and "python -m eval.report" in capsys.readouterr().out


def test_config_error_messages():
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from distill.validate import ConfigError, validate

    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["method=adpa", "method.gamma=-1", "logger=none"]))
    assert "set method.gamma=0.1" in cli.config_error_message(e.value)
    with pytest.raises(MissingMandatoryValue) as m:
        OmegaConf.create({"paths": {"root_dir": "???"}}).paths.root_dir
    assert "paths.root_dir=<value>" in cli.config_error_message(m.value)
    with pytest.raises(ConfigCompositionException) as c:
        compose_cfg(["method=nope"])
    assert "dckd" in cli.config_error_message(c.value)  # Hydra's list of the options
    assert cli.config_error_message(RuntimeError("a bug")) is None


def _run(args, tmp_path):
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("argv, expected", [
    (["foo=1"], "To append to your config use +foo=1"),
    (["method=nope"], "Could not find 'method/nope'"),
])
def test_run_py_config_errors_have_no_traceback(argv, expected, tmp_path):
    proc = _run([str(ROOT / "run.py"), *argv], tmp_path)
    assert proc.returncode == cli.CONFIG_ERROR_EXIT, proc.stderr[-2000:]
    assert expected in proc.stderr and "error: " in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow  # imports the whole pipeline (torch, Lightning) before the config is validated
def test_distill_bench_train_is_run_py_and_validation_errors_have_no_traceback(tmp_path):
    proc = _run(["-m", "distill_bench.cli", "train", "method=pad_lppd", "method.n_keep=9", "logger=none"], tmp_path)
    assert proc.returncode == cli.CONFIG_ERROR_EXIT and "Traceback" not in proc.stderr
    assert "error: invalid configuration" in proc.stderr and "method.n_keep=9" in proc.stderr
