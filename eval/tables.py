"""The console tables, one renderer: the columns come from the benchmarks (``columns`` and ``tables``
of each :class:`eval.benchmarks.base.Benchmark`), the rows from the results store's records.

- :func:`print_table`: the toy world's oracle table (model, method, seed, then the oracle's columns);
- :func:`print_benchmark_table`: one row per model, the columns of every benchmark, then each
  benchmark's own tables (MT-Bench per category).
"""
from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table

from eval.benchmarks import base as B


def build(title: str, head: Sequence[str], rows: Sequence[tuple[Sequence[str], dict]],
          columns: Sequence[B.Column], caption: str | None = None) -> Table:
    """A table: the ``head`` columns (left-aligned labels, given per row) then ``columns`` (each
    row's cell)."""
    table = Table(title=title, caption=caption)
    for h in head:
        table.add_column(h, justify="left")
    for c in columns:
        table.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap)
    for labels, scores in rows:
        table.add_row(*labels, *[c.cell(scores) for c in columns])
    return table


def render(title: str, head: Sequence[str], rows: Sequence[tuple[Sequence[str], dict]],
           columns: Sequence[B.Column], console: Console | None = None) -> Table:
    """Print :func:`build`'s table (wide enough in a log or a pipe); returns it."""
    table = build(title, head, rows, columns)
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: no wrapped headers
    console.print(table)
    return table


def rows_of(record: dict) -> list[dict]:
    """Table rows of one run: the reference models it evaluated, then its student."""
    rows = [dict(model=record["model"], who=who, seed=record.get("seed"), **s)
            for who, s in record.get("references", {}).items()]
    signal = (record.get("hparams") or {}).get("teacher_signal", "teacher")
    ablation = "" if signal == "teacher" else f" (teacher_signal={signal})"  # not the method: an ablation
    rows.append(dict(model=record["model"], who=f"student · {record['method']}{ablation}", seed=record.get("seed"),
                     **record["scores"]))
    return rows


def print_table(records: list[dict], console: Console | None = None, title: str = "Oracle evaluation (toy world)"):
    """Model, method, seed, then the oracle's columns (mean reward, win rate against the SFT student
    with its 95% CI); a reference model shared by several records is shown once."""
    rows, seen = [], set()
    for rec in records:
        for r in rows_of(rec):
            student = r["who"].startswith("student ·")
            key = (r["model"], r["who"], r["seed"] if student else None)
            if key in seen:
                continue
            seen.add(key)
            rows.append(([r["model"], r["who"]], {**r, "_seed": str(r["seed"]) if student else ""}))
    seed = B.Column("seed", lambda s: s["_seed"])
    return render(title, ("model", "method"), rows, [seed, *B.get("toy").columns(rows)], console)


def print_benchmark_table(rows: Sequence[tuple[str, dict]], console: Console | None = None, title: str = "Benchmarks"):
    """One row per model (``(label, flat scores)``), the columns of every benchmark ``eval.benchmarks``
    can select, then each benchmark's own tables; returns the main table."""
    console = console or Console()
    plugins = [b for b in B.registry().values() if not b.always]
    columns = [c for b in plugins for c in b.columns(rows)]
    labelled = [([who], s) for who, s in rows]
    table = render(title, ("model",), labelled, columns, console)
    for b in plugins:
        for sub_title, cols in b.tables(rows):
            render(sub_title, ("model",), labelled, cols, console)
    return table
