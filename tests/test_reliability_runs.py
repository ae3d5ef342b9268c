"""`python run.py` as a user runs it, under faults: SIGKILL mid-training and resume, determinism
across artifact stores, and no secret in anything a run writes.

Three real runs of a TINY toy world share this module (about two minutes on two cores):
  * ``reference``: uninterrupted, W&B offline, with canary values in the API-key variables;
  * ``killed``: the same world in another store, SIGKILLed (whole process group) once the
    distillation stage has written a checkpoint, then the same command again.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, TINY, compose_cfg

pytestmark = pytest.mark.slow

STEPS, EVERY = 24, 3  # distillation steps and checkpoint interval: a kill lands mid-epoch (16 steps/epoch)
WORLD = [*TINY, f"stages.distill.steps={STEPS}", f"checkpoint_every={EVERY}"]
CANARY = "sk-canary-7f3e9a2b1c8d4e6f"
JUDGE_CANARY = "jk-canary-0b9d2e7c5a1f3e48"


def _env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"DISTILL_ROOT": str(root), "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1",
                "WANDB_DIR": str(root / "wandb_dir"), "WANDB_CACHE_DIR": str(root / "wandb_cache"),
                "WANDB_CONFIG_DIR": str(root / "wandb_config"), "WANDB_DATA_DIR": str(root / "wandb_data")})
    env.update(extra)
    return env


def _start(root: Path, overrides: list[str], log_name: str, **env) -> tuple[subprocess.Popen, Path]:
    root.mkdir(parents=True, exist_ok=True)
    log = root / log_name
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *overrides], cwd=root, env=_env(root, **env),
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    proc.wait(timeout)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    return text


def _result(root: Path) -> dict:
    (path,) = (root / "results").glob("*.json")
    return json.loads(path.read_text())


def _model(root: Path, stage: str) -> dict[str, torch.Tensor]:
    (path,) = (root / "artifacts" / stage).glob("*/model/model.safetensors")
    return load_file(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run; canary keys in the environment, the judge's key variable named in the config."""
    root = tmp_path_factory.mktemp("reference")
    overrides = [*WORLD, "judge=vllm", "judge.api_key_env=DISTILL_TEST_JUDGE_KEY"]  # a judge that takes a key
    proc, log = _start(root, overrides, "console.log", OPENAI_API_KEY=CANARY, DISTILL_TEST_JUDGE_KEY=JUDGE_CANARY)
    return root, _finish(proc, log)


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """The same world in another store: SIGKILL once distillation has checkpointed, then the same command."""
    root = tmp_path_factory.mktemp("killed")
    overrides = [*WORLD, "logger=none"]
    proc, log = _start(root, overrides, "console-killed.log")
    deadline = time.time() + 600
    ckpt = None
    while ckpt is None and proc.poll() is None and time.time() < deadline:
        ckpt = next((root / "artifacts" / "distill").glob("*.work/ckpt/last.ckpt"), None)
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert ckpt is not None, "the run ended before distillation wrote a checkpoint:\n" + log.read_text()[-3000:]
    state = {"returncode": proc.returncode,
             "step": int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]),
             "published": [p.name for p in (root / "artifacts" / "distill").iterdir()
                           if (p / "manifest.json").exists()],
             "results": list((root / "results").glob("*.json")) if (root / "results").exists() else []}
    proc, log = _start(root, overrides, "console-resumed.log")
    return root, state, _finish(proc, log)


def test_sigkill_mid_training_resumes_to_the_uninterrupted_result(reference, killed):
    (ref_root, _), (root, state, resumed_log) = reference, killed
    assert state["returncode"] == -signal.SIGKILL
    assert 0 < state["step"] < STEPS and state["step"] % EVERY == 0
    assert state["published"] == [] and state["results"] == []  # the killed build left no artifact, no result
    assert "resuming from" in resumed_log and f"(step {state['step']} of {STEPS})" in resumed_log
    for stage in ("data", "sft_student"):  # built before distillation (DPO needs no teacher)
        assert f"reusing {stage}/" in resumed_log
    # the killed build's temporary directory and the checkpoints are gone once the artifact is published
    leftovers = [p.name for p in (root / "artifacts").glob("*/*") if ".tmp-" in p.name or p.name.endswith(".work")]
    assert leftovers == []
    ref, res = _result(ref_root), _result(root)
    assert res["artifacts"] == ref["artifacts"]
    for who, scores in ref["references"].items():
        assert res["references"][who] == pytest.approx(scores, abs=1e-9)
    assert res["scores"] == pytest.approx(ref["scores"], abs=1e-6)
    a, b = _model(ref_root, "distill"), _model(root, "distill")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_same_seed_same_world_another_seed_another_student(reference, killed):
    """Two stores, same seeds: byte-identical teachers and SFT student. Another distillation seed
    (everything upstream reused) trains another student."""
    ref_root, root = reference[0], killed[0]
    for stage in ("data", "sft_teacher", "dpo_teacher", "sft_student"):
        ours = sorted(p.relative_to(root / "artifacts") for p in (root / "artifacts" / stage).glob("*/**/*")
                      if p.is_file())
        assert ours, stage
        for rel in ours:
            if rel.name != "manifest.json":  # a manifest holds its build's time
                assert (root / "artifacts" / rel).read_bytes() == (ref_root / "artifacts" / rel).read_bytes(), rel
    from distill.artifacts import ArtifactStore
    from distill.stages import Pipeline

    cfg = compose_cfg([*WORLD, "logger=none", "seed=1"], root)
    store = ArtifactStore(cfg.paths.artifacts)
    other = Pipeline(cfg, store).distill()
    assert {s for s, _, reused in store.events if not reused} == {"distill"}
    a = _model(ref_root, "distill")
    b = load_file(other.path / "model" / "model.safetensors")
    assert any(not torch.equal(a[n], b[n]) for n in a)


def _files(root: Path):
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            yield p


def test_no_secret_in_anything_a_run_writes(reference):
    root, console = reference
    files = list(_files(root))
    assert any("wandb" in p.parts and "offline-run" in str(p) for p in files)  # W&B wrote its offline run
    assert any(p.parent.name == ".hydra" and p.name == "config.yaml" for p in files)
    leaks = [str(p.relative_to(root)) for p in files
             if CANARY.encode() in p.read_bytes() or JUDGE_CANARY.encode() in p.read_bytes()]
    assert leaks == []
    assert CANARY not in console and JUDGE_CANARY not in console
    # the config names the variable, never its value
    assert _result(root)["config"]["judge"]["api_key_env"] == "DISTILL_TEST_JUDGE_KEY"
