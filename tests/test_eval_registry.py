"""Benchmarks are registered plugins: the registry is the one list, the suite loops over it, the
tables take their columns from it."""
from __future__ import annotations

import io
import pkgutil

import pytest
from rich.console import Console

from eval.benchmarks import base as B
from eval.benchmarks import plugins


def test_the_registry_finds_one_plugin_per_file_in_table_order():
    reg = B.registry()
    assert list(reg) == ["toy", "alpaca_eval2", "arena_hard", "mt_bench", "open_llm"]
    assert B.selectable() == ["alpaca_eval2", "arena_hard", "mt_bench", "open_llm"]  # the oracle is never listed
    modules = {m.name for m in pkgutil.iter_modules(plugins.__path__)}
    assert {c.__module__.rsplit(".", 1)[1] for c in reg.values()} == modules
    assert reg["toy"].prefix == "toy/" and reg["mt_bench"].prefix == "eval/mt_bench/"
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'; choose from"):
        B.get("mmlu")


@pytest.fixture
def echo_benchmark():
    """A benchmark defined here: registering it is all it takes to be selectable, run and tabled."""

    class Echo(B.Benchmark):
        name = "echo_test"
        order = 99
        headline = ("length",)

        def load(self):
            return ["q1", "q22"]

        def generate(self, target, items):
            return [f"{target.name}:{q}" for q in items]

        def judge(self, target, items, answers):
            return [len(a) for a in answers]

        def score(self, target, items, answers, judgments):
            return B.BenchmarkResult(self.name, {"length": sum(judgments) / len(judgments)}, {"n": len(items)}, [])

        @classmethod
        def columns(cls, rows):
            return [B.Column("Echo length", lambda s: B.fmt(s.get(cls.prefix + "length"), ".1f"))]

    yield Echo
    B._REGISTRY.pop("echo_test")


def test_a_registered_benchmark_runs_in_the_suite_and_shows_in_the_tables(echo_benchmark, tmp_path):
    from conftest import compose_cfg
    from eval.suite import Suite, check_config, flat_scores, headline, print_benchmark_table

    cfg = compose_cfg(["eval=all", "eval.benchmarks=[echo_test]"], tmp_path)
    check_config(cfg)  # the registry is the list the config is checked against
    target = B.Target("m", "test/m", load=lambda: (None, None))
    with Suite(cfg, None, tmp_path / "out", task=object()) as suite:
        res = suite.run(target)
    assert list(res) == ["echo_test"] and res["echo_test"].scores == {"length": 4.5}  # "m:q1", "m:q22"
    scores = flat_scores(res)
    assert scores == {"eval/echo_test/length": 4.5} and headline(scores, "echo_test") == ("eval/echo_test/length", 4.5)
    buf = io.StringIO()
    print_benchmark_table([("m", scores)], console=Console(file=buf, width=400))
    text = buf.getvalue()
    assert "Echo length" in text and "4.5" in text and "AlpacaEval 2 WR (%)" in text


def test_an_unregistered_benchmark_is_refused_before_anything_runs(tmp_path):
    from conftest import compose_cfg
    from eval.suite import check_config

    with pytest.raises(ValueError, match=r"unknown \['echo_test'\]; choose from \['alpaca_eval2'"):
        check_config(compose_cfg(["eval=all", "eval.benchmarks=[echo_test]"], tmp_path))
