"""A credential on the command line stops the run before Hydra writes anything or prints it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from distill.validate import secret_overrides

CANARY = "sk-canary-cmdline-5d1e8f2a9b"


@pytest.mark.parametrize("arg,key", [
    (f"+judge.api_key={CANARY}", "judge.api_key"), ("judge.api_key=abc", "judge.api_key"),
    ("++judge.apikey=abc", "judge.apikey"), ("hydra.job.env_set.OPENAI_API_KEY=abc", "hydra.job.env_set.OPENAI_API_KEY"),
    ("+logger.wandb.token=abc", "logger.wandb.token"), ("+x.hf_token=abc", "x.hf_token"),
    ("+judge.client_secret=abc", "judge.client_secret"), ("+db.password=abc", "db.password"),
    (f"judge.model={CANARY}", "judge.model"),  # a value that looks like a key, whatever the key
])
def test_credential_overrides_are_found(arg, key):
    assert secret_overrides(["method=dpo", arg]) == [key]


@pytest.mark.parametrize("arg", ["judge.api_key_env=OPENAI_API_KEY", "+model.teacher.tokenizer={kind: bpe}",
                                 "method.top_k=5", "stages.max_new_tokens=8", "-m", "--cfg", "job"])
def test_ordinary_overrides_pass(arg):
    assert secret_overrides([arg]) == []


@pytest.mark.parametrize("multirun", [False, True])
def test_run_py_with_a_key_on_the_command_line_writes_nothing_and_never_echoes_it(tmp_path, multirun):
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "OPENAI_API_KEY": CANARY}
    cmd = [sys.executable, str(ROOT / "run.py"), *(["-m"] if multirun else []), "logger=none",
           f"+judge.api_key={CANARY}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert CANARY not in proc.stdout + proc.stderr
    assert "judge.api_key" in proc.stderr and "judge.api_key_env=OPENAI_API_KEY" in proc.stderr
    assert "export OPENAI_API_KEY=" in proc.stderr
    assert [p for p in tmp_path.rglob("*")] == []  # no folder, no .hydra/overrides.yaml, nothing
