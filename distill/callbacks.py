"""Hydra callbacks: at the end of a multirun, one table of every job's results."""
from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback


class MultirunTable(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        from distill.results import print_table, read_results

        records = read_results(config.paths.results, group=Path(config.hydra.sweep.dir).name)
        if records:
            print_table(records, title=f"Oracle evaluation — {len(records)} runs")
