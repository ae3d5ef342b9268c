"""Hydra callbacks: at the end of a multirun, one table of every job's results (the oracle's for
toy-world jobs, the benchmarks' for the others)."""
from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback

from distill.results import load_records
from eval.tables import print_benchmark_table, print_table


class MultirunTable(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        records = load_records([config.paths.results], group=Path(config.hydra.sweep.dir).name)
        oracle = [r for r in records if "toy/oracle_reward" in r.get("scores", {})]
        if oracle:
            print_table(oracle, title=f"Oracle evaluation — {len(oracle)} runs")
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
