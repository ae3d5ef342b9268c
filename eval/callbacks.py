"""Hydra callbacks: at the end of a multirun, one table of every job's results (the oracle's for
toy-world jobs, the benchmarks' for the others), and the teacher-signal ablations' paired
differences when the jobs hold any (``eval.ablation``)."""
from __future__ import annotations

import os

from hydra.experimental.callback import Callback

from distill.results import MULTIRUN_GROUP_ENV, load_records, multirun_group
from eval.ablation import markdown as ablation_markdown
from eval.ablation import paired_differences
from eval.tables import print_benchmark_table, print_table


class MultirunTable(Callback):
    """Names the multirun's group for its jobs when it starts (:func:`distill.results.multirun_group`:
    the jobs see only their own overrides) and prints the table of its results when it ends."""

    def on_multirun_start(self, config, **kwargs) -> None:
        os.environ[MULTIRUN_GROUP_ENV] = multirun_group(config)

    def on_multirun_end(self, config, **kwargs) -> None:
        group = os.environ.pop(MULTIRUN_GROUP_ENV, None) or multirun_group(config)
        records = load_records([config.paths.results], group=group)
        oracle = [r for r in records if "toy/oracle_reward" in r.get("scores", {})]
        if oracle:
            print_table(oracle, title=f"Oracle evaluation — {len(oracle)} runs")
            rows = paired_differences(oracle)
            if rows:  # teacher-signal ablations (experiment=teacher_ablation)
                print(ablation_markdown(rows))
        bench = [r for r in records if r not in oracle and any(k.startswith("eval/") for k in r.get("scores", {}))]
        if bench:
            rows, seen = [], set()
            for r in bench:
                for who, s in r.get("references", {}).items():
                    if s and (r["model"], who) not in seen:
                        seen.add((r["model"], who))
                        rows.append((f"{r['model']} · {who}", s))
                rows.append((f"{r['model']} · {r['method']} (seed {r.get('seed')})", r["scores"]))
            print_benchmark_table(rows, title=f"Benchmarks — {len(bench)} runs")
