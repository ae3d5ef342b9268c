"""The teacher-signal ablation table: what each distillation method owes to its teacher.

Every record with a ``hparams.teacher_signal`` (DCKD, ADPA, ADPA+, PAD: ``teacher`` is the method,
``none`` removes the teacher's term, ``flipped`` reverses its sign, PAD's ``shuffled`` permutes the
teacher's scores; ``distill.methods.plugin.teacher_signal``) is paired with the record of the same
model, method, other hyperparameters and seed at ``teacher``: the paired difference
``score(teacher) − score(ablation)`` per seed, their mean and a Student's t 95% interval over the
seeds (n − 1 degrees of freedom). The seeds vary the distillation stage only, so a pair shares its
teachers, SFT student and samples: the difference is the teacher signal's effect, with the
distillation's own seed noise. ``eval.report.write_report`` writes it as ``ablation.md`` next to the
report whenever the records hold an ablation (``experiment=teacher_ablation`` makes them).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

from distill.methods.plugin import labels
from distill.results import mean_ci_t

SIGNAL = "teacher_signal"
ORDER = ("none", "shuffled", "flipped")
WHAT = {"none": "teacher removed", "shuffled": "teacher's scores shuffled", "flipped": "teacher's sign flipped"}


def _signal(rec: dict) -> str | None:
    return (rec.get("hparams") or {}).get(SIGNAL)


def _setting(rec: dict) -> tuple:
    """The record's method settings other than its ablation, flattened (``dckd.alpha``). A nested
    stage's ``teacher_signal`` that equals the method's own (ADPA+'s DCKD stage follows ADPA+'s by
    default) is part of the ablation; one set apart is a setting of its own."""
    own, out = _signal(rec), []

    def walk(node: dict, prefix: str) -> None:
        for k, v in sorted(node.items()):
            if not prefix and k in (SIGNAL, "name", "teachers"):
                continue
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif not (k == SIGNAL and v == own):
                out.append((f"{prefix}{k}", str(v)))

    walk(rec.get("hparams") or {}, "")
    return tuple(out)


def paired_differences(records: Sequence[dict], metric: str = "toy/win_rate") -> list[dict]:
    """One row per (model, method, setting, ablation): the seeds present at both ``teacher`` and the
    ablation, the method's and the ablation's mean score, and the paired difference's mean, its t
    95% interval and the per-seed differences."""
    groups: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        sig, score = _signal(rec), (rec.get("scores") or {}).get(metric)
        if sig is None or score is None:
            continue
        key = (rec.get("model"), rec.get("method"), _setting(rec))
        groups[key][sig][int(rec.get("seed") or 0)] = float(score)
    rows = []
    for (model, method, setting), by_signal in groups.items():
        base = by_signal.get("teacher", {})
        for sig in sorted((s for s in by_signal if s != "teacher"), key=lambda s: (ORDER + (s,)).index(s)):
            seeds = sorted(set(base) & set(by_signal[sig]))
            if not seeds:
                continue
            diffs = [base[s] - by_signal[sig][s] for s in seeds]
            mean, lo, hi = mean_ci_t(diffs)
            rows.append({"model": model, "method": method, "setting": setting, "ablation": sig, "seeds": seeds,
                         "method_mean": sum(base[s] for s in seeds) / len(seeds),
                         "ablation_mean": sum(by_signal[sig][s] for s in seeds) / len(seeds),
                         "diff": mean, "ci_low": lo, "ci_high": hi, "diffs": diffs})
    order = list(labels())  # the registered methods' table order
    rows.sort(key=lambda r: (str(r["model"]), order.index(r["method"]) if r["method"] in order else len(order),
                             r["setting"], (ORDER + (r["ablation"],)).index(r["ablation"])))
    return rows


def markdown(rows: Sequence[dict], metric: str = "toy/win_rate") -> str:
    """The ablation table in Markdown (one line per method and ablation)."""
    if not rows:
        return ""

    def f(x):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

    names = labels()
    varying: dict[tuple, set[str]] = defaultdict(set)
    for r in rows:
        for k, v in r["setting"]:
            if any(dict(o["setting"]).get(k) != v for o in rows if (o["model"], o["method"]) == (r["model"], r["method"])):
                varying[(r["model"], r["method"])].add(k)
    lines = [f"## Teacher-signal ablation ({metric})", "",
             "Paired by seed (the seeds vary the distillation stage; teachers, SFT student and samples are "
             "shared). Difference = method − ablation; 95% CI: Student's t over the seeds.", "",
             "| model | method | ablation | seeds | with its teacher | ablated | difference [95% CI] | per seed |",
             "|:--|:--|:--|--:|--:|--:|--:|:--|"]
    for r in rows:
        shown = [(k, v) for k, v in r["setting"] if k in varying[(r["model"], r["method"])]]
        label = names.get(r["method"], r["method"]) + (" (" + ", ".join(f"{k}={v}" for k, v in shown) + ")"
                                                         if shown else "")
        ci = f"{f(r['diff'])} [{f(r['ci_low'])}, {f(r['ci_high'])}]"
        lines.append(f"| {r['model']} | {label} | {WHAT.get(r['ablation'], r['ablation'])} | {len(r['seeds'])} | "
                     f"{f(r['method_mean'])} | {f(r['ablation_mean'])} | {ci} | "
                     + " · ".join(f(d) for d in r["diffs"]) + " |")
    return "\n".join(lines) + "\n"
