"""The results store (one JSON per run), bootstrap confidence intervals, and the run's table."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SECRET_HINTS = ("api_key", "apikey", "token", "secret", "password")


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (resampling items with replacement)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def scrub(obj):
    """Drop values whose key looks like a secret (the results store never holds keys)."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if any(h in str(k).lower() for h in SECRET_HINTS) and isinstance(v, str)
                    and not str(k).endswith("_env") else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def write_result(results_dir: str | os.PathLike, name: str, record: dict) -> Path:
    """Write one run's record atomically as ``<results_dir>/<name>.json``."""
    d = Path(results_dir)
    d.mkdir(parents=True, exist_ok=True)
    record = scrub({**record, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
    path = d / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_results(results_dir: str | os.PathLike, group: str | None = None) -> list[dict]:
    out = []
    for p in sorted(Path(results_dir).glob("*.json")):
        rec = json.loads(p.read_text())
        if group is None or rec.get("run", {}).get("group") == group:
            out.append(rec)
    return out


def rows_of(record: dict) -> list[dict]:
    """Table rows of one run: the reference models it evaluated, then its student."""
    rows = [dict(model=record["model"], who=who, seed=record.get("seed"), **s)
            for who, s in record.get("references", {}).items()]
    rows.append(dict(model=record["model"], who=f"student · {record['method']}", seed=record.get("seed"),
                     **record["scores"]))
    return rows


def print_table(records: list[dict], console: Console | None = None, title: str = "Oracle evaluation (toy world)"):
    """Model, method, mean oracle reward, win rate against the SFT student with its 95% CI."""
    table = Table(title=title)
    for col in ("model", "method", "seed", "oracle reward", "win rate vs SFT student [95% CI]"):
        table.add_column(col, justify="left" if col in ("model", "method") else "right")
    seen = set()
    for rec in records:
        for r in rows_of(rec):
            key = (r["model"], r["who"], r["seed"] if r["who"].startswith("student ·") else None)
            if key in seen:
                continue
            seen.add(key)
            wr = r.get("toy/win_rate")
            ci = (f"{wr:5.1f} [{r['toy/win_rate_ci_low']:5.1f}, {r['toy/win_rate_ci_high']:5.1f}]"
                  if wr is not None else "—")
            table.add_row(r["model"], r["who"], str(r["seed"]) if r["who"].startswith("student ·") else "",
                          f"{r['toy/oracle_reward']:.3f}", ci)
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: no wrapped headers
    console.print(table)
    return table
