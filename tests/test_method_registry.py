"""Methods are registered plugins (``distill.methods.plugin``): one module per method declares its
typed config, inputs and recipe, and the pipeline, the dry run, validation, the report, the sweeps
and the bench read the registry instead of naming methods."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_cfg
from distill.methods import plugin as P
from distill.validate import ConfigError, validate

READERS = ("distill/stages.py", "distill/plan.py", "distill/validate.py", "eval/report.py", "sweeps/local.py",
           "distill/recipes.py", "distill/losses/__init__.py")


def test_every_method_config_is_a_registered_plugin():
    for path in sorted(Path(CONF, "method").glob("*.yaml")):
        cfg = compose_cfg([f"method={path.stem}"])
        plugin = P.lookup(cfg.method)
        assert cfg.method.name in plugin.names, path.name
        assert set(plugin.hparams(cfg.method.name)) <= set(cfg.method), f"{path.name}: a declared key is missing"
    assert P.names()[0] == "dpo" and P.get("dpo").baseline  # the baseline leads the tables
    assert P.labels()["adpa_plus"] == "ADPA+" and P.labels()["pad"] == "PAD"  # aliases of older records too


def test_no_registry_reader_names_a_method():
    names = set(P.names()) | set(P.labels())
    for rel in READERS:
        text = (ROOT / rel).read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        found = sorted(n for n in names if re.search(rf"""["']{re.escape(n)}["']""", code))
        assert not found, f"{rel} names {found} as string literals; read distill.methods.plugin instead"


def test_a_hyperparameter_is_checked_with_its_own_methods_meaning():
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["method=dpo", "method.beta=-1"]), gpu_available=True)
    assert "DPO's KL strength" in str(e.value) and "set method.beta=0.1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(["method=pad", "method.beta=-1"]), gpu_available=True)
    assert "Plackett-Luce" in str(e.value) and "set method.beta=10.0" in str(e.value)


def test_an_unknown_method_name_is_named_with_the_known_ones():
    cfg = compose_cfg(["method=dpo", "method.name=nope", "method.recipe._target_=distill.recipes.nope"])
    with pytest.raises(ConfigError, match=r"method.name='nope': no such method is registered .*known: dpo, dckd"):
        validate(cfg, gpu_available=True)


def test_recipe_inputs_and_the_dry_run_come_from_one_declaration(tmp_path):
    """The distill key's ``inputs`` are exactly the artifacts the plugin's ``inputs`` declares (plus
    the data, the SFT student and the teachers), and the dry run lists the same ones."""
    from distill.artifacts import KeyStore
    from distill.plan import walk
    from distill.stages import Pipeline

    for method in ("dckd", "adpa", "pad"):
        cfg = compose_cfg([f"method={method}"], tmp_path)
        pipe = Pipeline(cfg, KeyStore(cfg.paths.artifacts))
        declared = P.lookup(cfg.method).inputs(pipe, cfg.method)
        keys = {f"{a.stage}/{a.key}" for a in declared.values()}
        inputs = set(pipe.recipe_inputs(cfg.method))
        assert keys <= inputs, method
        assert {i.split("/")[0] for i in inputs - keys} <= {"data", "sft_teacher", "sft_student", "dpo_teacher"}
        planned = {f"{r['stage']}/{r['key']}" for r in walk(cfg)}
        assert inputs <= planned, method


def test_typed_config_fields_carry_range_label_and_symbol():
    h = P.get("adpa").hparams()["gamma"]
    assert (h.symbol, h.axis) == ("γ", "γ, ADPA advantage weight (dimensionless)")
    assert h.ok(0.0) and not h.ok(-0.1) and not h.ok(True) and not h.ok(float("nan"))
    assert h.range_text().startswith("must be >= 0 (ADPA's advantage weight")
    k = P.get("dckd").hparams()["top_k"]
    assert k.ok(5) and not k.ok(2.5) and not k.ok(0) and k.range_text().startswith("must be an integer >= 1")
    top_p = P.get("pad_lppd").hparams()["top_p"]
    assert top_p.ok(1.0) and not top_p.ok(0.0) and top_p.range_text().startswith("must be in (0, 1]")


def test_sweep_ranges_come_from_the_swept_methods():
    from sweeps import local

    spec = {"parameters": {"method": {"value": "dckd"}, "method.alpha": {"values": [0.1, -1.0]}}}
    (h,) = local.ranges(spec, "method.alpha")
    assert h.bound_text() == "α ≥ 0"
    assert local.ranges({"parameters": {"method": {"value": "dpo"}}}, "method.alpha") == []  # not DPO's key


def test_bench_methods_and_batches_come_from_the_registry():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    benched = [n for p in P.registry() if p.bench for n in p.names]
    assert bench.METHODS == ["sft", *benched] and "adpa_plus" not in bench.METHODS
    for m in bench.METHODS:
        batch = bench.synthetic_batch(m, 2, 3, 4, 30, 5, 3)
        assert batch["input_ids"].shape[0] in (2, 4, 6), m


def test_the_legacy_recipe_targets_resolve_to_the_plugins():
    from hydra.utils import get_method

    for name in ("dpo", "dckd", "adpa", "adpa_plus", "pad"):
        cfg = compose_cfg([f"method={name}"])
        fn = get_method(OmegaConf.select(cfg, "method.recipe._target_"))
        assert callable(fn) and P.lookup(cfg.method) is P.get(fn.__name__)
