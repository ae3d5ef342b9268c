"""W&B runs: a sweep agent's run keeps the full config, runs are named, grouped, typed and tagged,
metric keys are ASCII, the CSV logger writes the scores."""
from __future__ import annotations

from pathlib import Path

import yaml

from conftest import ROOT, TINY, compose_cfg
from wandb_files import read_offline_run

# What `wandb agent` sets before it starts the sweep's command (wandb_agent.py, Agent._command_run):
# WANDB_SWEEP_ID, WANDB_RUN_ID, and WANDB_SWEEP_PARAM_PATH pointing at wandb/sweep-<id>/config-<run
# id>.yaml, a config-defaults file {param: {value: v}}; the command's ${args_no_hyphens} renders the
# same parameters as key=value, which reach run.py as Hydra overrides.
def _as_agent_child(monkeypatch, tmp_path: Path, sweep_id: str, run_id: str, params: dict) -> None:
    import wandb

    param_path = tmp_path / "wandb" / f"sweep-{sweep_id}" / f"config-{run_id}.yaml"
    param_path.parent.mkdir(parents=True)
    param_path.write_text(yaml.safe_dump({k: {"value": v} for k, v in params.items()}))
    for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "false", "WANDB_SWEEP_ID": sweep_id,
                 "WANDB_RUN_ID": run_id, "WANDB_SWEEP_PARAM_PATH": str(param_path),
                 "WANDB_DIR": str(tmp_path / "wandb_dir"), "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
                 "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
                 "WANDB_DATA_DIR": str(tmp_path / "wandb_data")}.items():
        monkeypatch.setenv(k, v)
    wandb.teardown()  # W&B reads its settings (the sweep's among them) from the environment at setup


def test_sweep_agent_run_keeps_method_block_and_swept_value(tmp_path, monkeypatch, capsys):
    import wandb
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    from distill.pipeline import make_logger, run_group, run_name

    params = {"method": "adpa", "method.gamma": 0.2, "seed": 1}  # a point of sweeps/adpa_gamma.yaml
    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args_no_hyphens"]
    assert args == ["method=adpa", "method.gamma=0.2", "seed=1"]
    _as_agent_child(monkeypatch, tmp_path, "swp123", "agentrun1", params)
    try:
        cfg = compose_cfg([*TINY, *args], tmp_path)
        assert run_name(cfg) == "adpa-gemma-s1-gamma0.2" and run_group(cfg) == "swp123"
        logger = make_logger(cfg)
        logger.log_metrics({"toy/win_rate": 61.5, "reference/sft_teacher/toy/win_rate": 70.0})
        logger.experiment.finish()
    finally:
        wandb.teardown()
    out = capsys.readouterr()
    assert "was locked by" not in out.out + out.err  # no config key collides with a sweep parameter

    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*-agentrun1")
    run = read_offline_run(run_dir)
    config = run["config"]
    # the sweep's own parameters, as the agent set them
    assert config["method"] == "adpa" and config["method.gamma"] == 0.2 and config["seed"] == 1
    # and the full method block the run used, flat, beside them
    method = yaml.safe_load((ROOT / "conf" / "method" / "adpa.yaml").read_text())
    for key in ("name", "top_k", "teachers", "advantage_clamp"):
        assert f"method.{key}" in config, key
    assert config["method.name"] == "adpa" and config["method.teachers"] == method["teachers"]
    assert config["model.family"] == "gemma" and config["stages.distill.steps"] == 4
    # nothing nested that a sweep key could lock (``_wandb`` is W&B's own)
    assert not [k for k, v in config.items() if isinstance(v, dict) and not k.startswith("_")]
    assert run["name"] == "adpa-gemma-s1-gamma0.2" and run["group"] == "swp123"
    assert run["job_type"] == "student" and set(run["tags"]) >= {"adpa", "gemma", "toy"}
    assert run["summary"]["toy/win_rate"] == 61.5
    assert run["summary"]["reference/sft_teacher/toy/win_rate"] == 70.0


def test_run_name_carries_the_overridden_hyperparameters(tmp_path, monkeypatch):
    from distill.pipeline import run_name, varying_hparams

    monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH", raising=False)
    cfg = compose_cfg(["method=adpa", "method.gamma=0.05", "method.top_k=7", "seed=2"], tmp_path)
    assert varying_hparams(cfg) == {"gamma": 0.05, "top_k": 7}
    assert run_name(cfg) == "adpa-gemma-s2-gamma0.05-top_k7"
    assert run_name(compose_cfg(["method=dpo"], tmp_path)) == "dpo-gemma-s0"
    # a sweep parameter outside the method group is named too (its last key)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"method": {"value": "dpo"}, "stages.distill.lr": {"value": 1e-4}}))
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(params))
    cfg = compose_cfg(["method=dpo", "stages.distill.lr=0.0001"], tmp_path)
    assert run_name(cfg) == "dpo-gemma-s0-lr0.0001"


def test_group_is_the_sweep_id_under_an_agent(tmp_path, monkeypatch):
    from distill.pipeline import run_group

    cfg = compose_cfg([], tmp_path)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    assert run_group(cfg) == "adhoc"  # composed without @hydra.main
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc987")
    assert run_group(cfg) == "abc987"


def _multirun_config(task, hydra=(), sweep_dir="logs/multiruns/2026-12-03_15-00-00", group=None):
    from omegaconf import OmegaConf

    return OmegaConf.create({"group": group, "hydra": {"sweep": {"dir": sweep_dir},
                                                       "overrides": {"task": list(task), "hydra": list(hydra)}}})


def test_a_multirun_is_grouped_by_its_name_not_its_time(monkeypatch):
    from distill.results import GROUP_MAX, multirun_group

    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    task = ["experiment=smoke", "method=dpo,dckd,adpa", "seed=0,1"]
    assert multirun_group(_multirun_config(task)) == "experiment=smoke method=dpo,dckd,adpa seed=0,1"
    assert multirun_group(_multirun_config(task, ["hydra.sweep.dir=logs/multiruns/gamma-grid"],
                                           "logs/multiruns/gamma-grid")) == "gamma-grid"
    assert multirun_group(_multirun_config(task, ["hydra.job.name=six-methods"])) == "six-methods"
    assert multirun_group(_multirun_config(task, ["hydra.job.name=six-methods"], group="paper")) == "paper"
    assert multirun_group(_multirun_config([])) == "2026-12-03_15-00-00"   # nothing to name it by
    long = [f"method.gamma={','.join(str(g / 100) for g in range(60))}"]
    name = multirun_group(_multirun_config(long))
    assert len(name) <= GROUP_MAX and name.startswith("method.gamma=0.0,0.01") and "~" in name
    assert name == multirun_group(_multirun_config(long))                  # the same command, the same group
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc987")
    assert multirun_group(_multirun_config(task)) == "abc987"


def test_group_override_names_the_run_and_its_results_file(tmp_path, monkeypatch):
    from distill.pipeline import plain_cfg, run_group, run_name
    from distill.results import result_id

    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH", raising=False)
    cfg = compose_cfg(["method=adpa", "method.gamma=0.2", "group=gamma-grid"], tmp_path)
    assert run_group(cfg) == "gamma-grid"
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc987")
    assert run_group(cfg) == "gamma-grid"          # a sweep file's group parameter wins over the sweep id
    assert run_name(cfg) == "adpa-gemma-s0-gamma0.2"
    # a run of the same config in another named group writes a results file of its own, so each
    # group's report keeps its runs; unnamed, the id is the config's alone
    other = compose_cfg(["method=adpa", "method.gamma=0.2", "group=other"], tmp_path)
    assert result_id(plain_cfg(cfg)) != result_id(plain_cfg(other))
    plain = compose_cfg(["method=adpa", "method.gamma=0.2"], tmp_path)
    assert result_id(plain_cfg(plain)) == result_id(plain_cfg(compose_cfg(["method=adpa", "method.gamma=0.2"],
                                                                            tmp_path)))


def test_every_sweep_file_groups_its_runs_by_its_name():
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        assert spec["parameters"]["group"] == {"value": path.stem} == {"value": spec["name"]}, path.name


def test_multirun_jobs_and_its_table_share_the_multirun_name(tmp_path):
    """A Hydra multirun (run.py's callback, a job that prints run_group): every job gets the name of
    the multirun's command line, not the time stamp of its folder."""
    import os
    import subprocess
    import sys

    from distill.results import overrides_name

    app = tmp_path / "app.py"
    app.write_text(
        "import hydra\nfrom distill.pipeline import run_group\n"
        "@hydra.main(version_base='1.3', config_path=None, config_name=None)\n"
        "def main(cfg):\n    print('GROUP', cfg.seed, repr(run_group(cfg)))\nmain()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_SWEEP")}
    common = [f"+paths.results={tmp_path / 'results'}", "+hydra.callbacks.t._target_=eval.callbacks.MultirunTable"]
    proc = subprocess.run([sys.executable, str(app), "-m", "+method=dpo,dckd", "+seed=0,1", *common,
                           f"hydra.sweep.dir={tmp_path}/multi/${{now:%H-%M-%S}}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = [line.split(" ", 2)[2] for line in proc.stdout.splitlines() if line.startswith("GROUP")]
    # hydra.sweep.dir was given: its folder names the group (a time stamp here, as asked)
    assert len(groups) == 4 and len(set(groups)) == 1 and groups[0] != "'+method=dpo,dckd +seed=0,1'"
    proc = subprocess.run([sys.executable, str(app), "-m", "+method=dpo,dckd", "+seed=0,1", *common],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = [line.split(" ", 2)[2] for line in proc.stdout.splitlines() if line.startswith("GROUP")]
    # the job's overrides as typed (Hydra's own hydra.* overrides are not among them)
    assert groups == [repr(overrides_name(["+method=dpo,dckd", "+seed=0,1", common[0]]))] * 4
    assert groups[0].startswith("'+method=dpo,dckd +seed=0,1 ")


def test_flat_config_has_dotted_keys_and_no_secrets(tmp_path):
    from distill.pipeline import flat_config

    cfg = compose_cfg(["method=dckd"], tmp_path)
    flat = flat_config(cfg)
    assert flat["method.alpha"] == cfg.method.alpha and flat["seed"] == 0 and "method" not in flat
    assert not any(isinstance(v, dict) for v in flat.values())
    assert not any(k.startswith("hydra.") for k in flat)


def test_report_reads_the_ascii_reference_keys_back_as_labels():
    from types import SimpleNamespace

    from eval import report as R

    run = SimpleNamespace(name="adpa-gemma-s0-gamma0.2", id="r1", group="swp123", created_at="",
                          config={"method.name": "adpa", "method.gamma": 0.2, "model.family": "gemma", "seed": 0,
                                  "world.name": "toy"},
                          summary={"toy/win_rate": 61.5, "reference/sft_teacher/toy/win_rate": 70.0,
                                   "reference/dpo_teacher/toy/win_rate": 95.0,
                                   "reference/sft_student/toy/win_rate": 50.0})
    rec = R.record_from_wandb(run)
    assert rec["hparams"]["gamma"] == 0.2 and rec["scores"] == {"toy/win_rate": 61.5}
    assert rec["references"] == {"teacher · SFT (π_ref)": {"toy/win_rate": 70.0},
                                 "teacher · DPO (π_dpo)": {"toy/win_rate": 95.0},
                                 R.SFT_STUDENT: {"toy/win_rate": 50.0}}


def test_without_a_key_the_run_stays_offline_after_a_stage_run_started_wandb(tmp_path):
    """No API key and no WANDB_MODE (a new user's `python run.py`): a stage's own W&B run starts
    wandb first in the process, and wandb reads WANDB_MODE only then, so the run's logger must ask for
    offline itself (it failed with "No API key configured" when it relied on Lightning's variable)."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from hydra import compose, initialize_config_dir
        from omegaconf import open_dict
        from distill.pipeline import make_logger, stage_logger
        with initialize_config_dir(config_dir={str(ROOT / "conf")!r}, version_base="1.3"):
            cfg = compose("config", overrides=["logger=wandb"])
        with open_dict(cfg):
            cfg.paths.output_dir = {str(tmp_path / "out")!r}
        stage = stage_logger(cfg, "sft_student")
        stage.experiment.finish()
        run = make_logger(cfg)
        run.experiment.log({{"x": 1}})
        run.experiment.finish()
        print("offline runs ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_SILENT="true")  # no ~/.netrc key either
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "offline runs ok" in proc.stdout
    assert len(list((tmp_path / "out" / "wandb").glob("offline-run-*"))) == 2
