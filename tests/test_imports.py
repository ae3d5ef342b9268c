"""Imports flow one way: toyworld -> distill -> eval -> report/sweeps/CLI (tests/import_graph.py
reads every import statement of every module, function-level ones included)."""
from __future__ import annotations

import textwrap

import import_graph as ig


def test_no_import_goes_against_the_layers():
    bad = ig.violations()
    assert not bad, "imports against toyworld -> distill -> eval -> report/sweeps/CLI:\n" + "\n".join(bad)


def test_package_graph_is_layered():
    g = ig.package_graph()
    assert g.get("toyworld", set()) == set()
    assert g["distill"] <= {"toyworld"}
    assert "report" not in g["eval"] and "sweeps" not in g["eval"] and "distill_bench" not in g["eval"]


def test_the_scan_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "distill"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text(textwrap.dedent("""
        from . import n
        def f():
            from eval.suite import Suite
            import toyworld.task
    """))
    monkeypatch.setattr(ig, "ROOT", tmp_path)
    found = {(t, top) for _, t, top in ig.imports(pkg / "m.py")}
    assert found == {("distill.n", True), ("eval.suite", False), ("toyworld.task", False)}
    assert ig.layer("eval.report.x") == "report" and ig.layer("eval.suite") == "eval" and ig.layer("os") is None
    assert [v.split(": ", 1)[1] for v in ig.violations()] == ["distill.m (distill) imports eval.suite (eval)"]


def test_no_import_cycle_between_modules():
    # function-level imports included: one that only hides a cycle shows here
    assert ig.cycles() == []


def test_the_cycle_scan_finds_a_cycle_hidden_in_a_function(tmp_path, monkeypatch):
    pkg = tmp_path / "distill"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from distill import b\n")
    (pkg / "b.py").write_text("def f():\n    from distill.a import x\n")
    (pkg / "c.py").write_text("from distill.a import y\n")
    monkeypatch.setattr(ig, "ROOT", tmp_path)
    assert ig.cycles() == [["distill.a", "distill.b"]]
