"""Comparison tables (Markdown, LaTeX, CSV) and sensitivity plots from the results store or W&B.

    python -m eval.report                                  # results/ -> reports/
    python -m eval.report results/ --out paper/ --metric toy/win_rate eval/alpaca_eval2/lc_win_rate
    python -m eval.report results/ --group adpa_gamma      # one multirun or local sweep
    python -m eval.report my-entity/distill-bench          # the runs of a W&B project (wandb.Api)

Table: one block per model family (per world and family when several worlds are present) and
setup: runs whose setups differ (the results' config without the method, seed, paths and logging,
and the stage fingerprints of the data, the teachers and the SFT student; e.g. 150 against 10
distillation steps) are never merged but go into blocks of their own, named by the keys that differ
(``gemma · stages.distill.steps=10``). In each block the reference models every run evaluated
(``references`` of the results JSON: the SFT and DPO teachers, the SFT student), then the distilled
students, one row per method and setting of its hyperparameters: those that vary within the method
across the records and those fixed away from the method's defaults (``conf/method/<name>.yaml`` in
that world and family), so a sweep run at γ=0 only reads ``ADPA (γ=0)``; floats to three
significant digits, more where needed to tell values apart. A cell is the mean ± sample standard
deviation (ddof 1) over seeds; one seed shows the mean alone. Arena-Hard's CIs are first replaced
by the official bootstrap pooled over every model of the records (when their judgment files are
readable), and a note says which CI the records carry; MT-Bench's per-category means follow as a
table of their own. A later run with the same world, family, setup, method, hyperparameters and
seed replaces an earlier one, with a warning (logged and written under the table). Columns are the
scores of ``COLUMNS`` that hold at least one value. Bold marks the best distilled student per column
within a block (references, the teachers and the SFT student, never; ties at the shown precision
are all bold; a column with one value in a block, or all tied, has no bold). Two more tables give
the difference of means against DPO (per column, the best DPO row of the same block) and against
the SFT student. Every score is higher-is-better. The LaTeX needs only booktabs and compiles with
pdflatex (Greek symbols with their subscripts and values in one math group: ``$\pi_{\mathrm{sft}}$``).

Plots: for each method and each hyperparameter that takes at least two numeric values within it,
the metric against that hyperparameter, one line per block (and per setting of the method's other
varying hyperparameters), the mean over seeds with one kind of 95% band per plot, named in the
legend: Student's t interval over seeds when any point has two or more seeds (a point of one seed
is then drawn hollow, without interval), else each run's own CI (``<metric>_ci_low``/``_ci_high``,
e.g. the win rate's bootstrap CI), clipped to the score's range. The x axis is logarithmic for a
log-spaced grid (symmetric-log when it holds 0). The legend sits outside the axes; a dotted line
marks each block's SFT student. PNG and SVG, drawn with the Agg canvas (no pyplot, no global
backend switch).

A reference model is evaluated once per record; its rows count each distinct point estimate once
(the bootstrap CIs of a reference differ between records because their seed is the run's seed).

:func:`write_report` serves the CLI, ``sweeps.local`` and :class:`ReportCallback` (Hydra, at the end
of a multirun).
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from hydra.experimental.callback import Callback

from distill.results import load_records  # the results store's one reader (also eval.report.load_records)
from distill.results import t95
from eval.ablation import markdown as ablation_markdown
from eval.ablation import paired_differences

log = logging.getLogger(__name__)

SFT_STUDENT = "student · SFT (π_sft)"
REFERENCE_ORDER = ("teacher · SFT (π_ref)", "teacher · DPO (π_dpo)", SFT_STUDENT)
FAMILIES = ("gemma", "llama", "qwen", "danube")


def methods() -> dict[str, str]:
    """``method.name`` -> the paper's label, in table order: the registered method plugins
    (``distill.methods``, :func:`distill.methods.plugin.labels`); the report names no method itself."""
    from distill.methods.plugin import labels

    return labels()


def baselines() -> set[str]:
    """The methods the "Δ against DPO" table compares with (the plugins declared ``baseline``)."""
    from distill.methods.plugin import registry

    return {n for p in registry() if p.baseline for n in p.names}


def baseline_label() -> str:
    """The baseline's label in headings ("DPO")."""
    names = methods()
    return " / ".join(names.get(n, n) for n in sorted(baselines())) or "baseline"


class ReportError(ValueError):
    """No records, an unknown metric, an unreadable source: the message says which."""


# ----------------------------------------------------------------------------- columns, declared once
@dataclass(frozen=True)
class Column:
    key: str          # score key; a key ending in "/*" stands for every key under that prefix
    header: str       # table header ("{name}" is the part of the key under the prefix)
    fmt: str          # format of the mean, the std and the deltas
    axis: str         # plot axis label, with the unit
    headline: bool = False  # plotted when no --metric is given (of "/*": the average only)
    bounds: tuple[float, float] | None = None  # the score's range; plot bands are clipped to it


COLUMNS = (
    Column("toy/oracle_reward", "Oracle reward", ".3f", "mean oracle reward (0–1)", True, (0, 1)),
    Column("toy/correctness", "Correctness", ".3f", "correctness (0–1)", False, (0, 1)),
    Column("toy/format_rate", "Format rate", ".3f", "bracketed answers (fraction, 0–1)", False, (0, 1)),
    Column("toy/win_rate", "Win rate vs SFT (%)", ".1f", "oracle win rate vs SFT student (%)", True, (0, 100)),
    Column("eval/alpaca_eval2/lc_win_rate", "AlpacaEval 2 LC (%)", ".2f", "AlpacaEval 2 LC win rate (%)", True,
           (0, 100)),
    Column("eval/alpaca_eval2/lc_minimal_win_rate", "AlpacaEval 2 LC-minimal (%)", ".2f",
           "AlpacaEval 2 length_controlled_minimal win rate (%; not the leaderboard's LC)", True, (0, 100)),
    Column("eval/alpaca_eval2/win_rate", "AlpacaEval 2 WR (%)", ".2f", "AlpacaEval 2 win rate (%)", False, (0, 100)),
    Column("eval/arena_hard/score", "Arena-Hard (%)", ".1f", "Arena-Hard win rate vs baseline (%)", True, (0, 100)),
    Column("eval/mt_bench/turn1", "MT-Bench T1", ".2f", "MT-Bench turn-1 score (1–10)", False, (1, 10)),
    Column("eval/mt_bench/turn2", "MT-Bench T2", ".2f", "MT-Bench turn-2 score (1–10)", False, (1, 10)),
    Column("eval/mt_bench/score", "MT-Bench", ".2f", "MT-Bench score (1–10)", True, (1, 10)),
    Column("eval/open_llm/*", "Open LLM {name}", ".2f", "Open LLM Leaderboard {name} (task metric)", True),
)
AUX_SUFFIXES = ("_ci_low", "_ci_high", "_stderr")
HIDDEN_KEYS = ("mmlu_n_subjects",)   # counts under a "/*" prefix that are not scores


@dataclass(frozen=True)
class Hparam:
    symbol: str
    axis: str


def hparam(name: str, method: str | None = None) -> Hparam:
    """The symbol and axis label of hyperparameter ``name`` as ``method``'s plugin declares it
    (SimPO's γ is its target margin, ADPA's γ its advantage weight); a key no plugin of this checkout
    declares is shown under its own name."""
    from distill.methods.plugin import find

    plugin = find(method)
    h = plugin.hparams(method).get(name) if plugin is not None else None
    return Hparam(h.symbol, h.axis) if h is not None else Hparam(name, f"{name} (as configured)")


def columns_for(records: Sequence[dict], metrics: Sequence[str] | None = None) -> list[Column]:
    """The columns with at least one value among the records' and their references' scores;
    ``metrics`` keeps only those keys (an unknown key raises, naming the ones present)."""
    present = set()
    for rec in records:
        for scores in (rec.get("scores", {}), *rec.get("references", {}).values()):
            present |= {k for k, v in scores.items() if isinstance(v, (int, float)) and not k.endswith(AUX_SUFFIXES)}
    cols = []
    for col in COLUMNS:
        if col.key.endswith("/*"):
            prefix = col.key[:-1]
            names = sorted((k[len(prefix):] for k in present if k.startswith(prefix) and "/" not in k[len(prefix):]
                            and k[len(prefix):] not in HIDDEN_KEYS),
                           key=lambda n: (n.endswith("average"), n))
            cols += [Column(prefix + n, col.header.format(name=n), col.fmt, col.axis.format(name=n), col.headline
                            and n.endswith("average")) for n in names]
        elif col.key in present:
            cols.append(col)
    if metrics:
        known = {c.key: c for c in cols}
        missing = [m for m in metrics if m not in present]
        if missing:
            raise ReportError(f"no values for {', '.join(missing)}; present: {', '.join(sorted(present)) or 'none'}")
        cols = [known.get(m, Column(m, m, ".3f", m)) for m in metrics]
    return cols


# ----------------------------------------------------------------------------- reading records
def _cfg_get(config: dict, dotted: str, default=None):
    """``config["a"]["b"]`` for "a.b", or a flat "a.b" / "a/b" key (loggers that flatten)."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            node = None
            break
        node = node[part]
    if node is None:
        node = config.get(dotted, config.get(dotted.replace(".", "/"), default))
    return node if node is not None else default


def record_from_wandb(run) -> dict | None:
    """A results record from a W&B run: its config (logged by ``run.py``) and summary."""
    summary = getattr(run.summary, "_json_dict", None) or dict(run.summary)
    config = {k: (v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v)
              for k, v in dict(run.config).items()}
    method = _cfg_get(config, "method.name")
    if method is None:
        return None
    method_cfg = _cfg_get(config, "method", {}) or {}
    if not method_cfg:  # flat keys "method.beta" / "method/beta"
        method_cfg = {re.split(r"[./]", k, 1)[1]: v for k, v in config.items() if re.match(r"method[./]", k)}
    scores, refs = {}, {}
    for k, v in summary.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if m := re.match(r"^reference/(.+?)/((?:toy|eval)/.+)$", k):  # reference/<stage>/<metric> (ASCII)
            who = dict(zip(("sft_teacher", "dpo_teacher", "sft_student"), REFERENCE_ORDER)).get(m.group(1), m.group(1))
            refs.setdefault(who, {})[m.group(2)] = float(v)
        elif k.startswith(("toy/", "eval/")):
            scores[k] = float(v)
    if not scores:
        return None
    return {"run": {"name": run.name, "group": getattr(run, "group", None), "id": run.id},
            "method": method, "model": _cfg_get(config, "model.family", "?"), "seed": _cfg_get(config, "seed"),
            "world": _cfg_get(config, "world.name", "?"),
            "hparams": {k: v for k, v in method_cfg.items() if k not in ("recipe", "module")},
            "scores": scores, "references": refs, "written": str(getattr(run, "created_at", "") or ""),
            "config": config, "artifacts": _cfg_get(config, "artifacts") or {}, "_source": f"wandb:{run.id}"}


def read_wandb(project: str, api=None, group: str | None = None) -> list[dict]:
    """The records of a W&B project ``entity/project`` (``api``: a ``wandb.Api`` or a stand-in)."""
    if api is None:
        import wandb

        api = wandb.Api()
    runs = api.runs(project, filters={"group": group}) if group else api.runs(project)
    return [r for r in (record_from_wandb(run) for run in runs) if r is not None]


# ----------------------------------------------------------------------------- rows
def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


# what must be equal for two runs to share a table block: the data, the teachers, the SFT student,
# the stages' sizes, steps and learning rates, the evaluation (the method and its hyperparameters,
# the seed, and where or how the run was logged may differ)
SHARED_STAGES = ("data", "sft_teacher", "dpo_teacher", "sft_student")
SETUP_IGNORE = ("method", "seed", "paths", "hydra", "logger", "trainer.enable_progress_bar", "dry_run",
                "optimized_metric", "checkpoint_every", "hparams_search", "experiment", "wandb", "progress",
                "artifacts", "_wandb")


def _flatten(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True, default=str)}


def setup_of(rec: dict) -> dict[str, str]:
    """The record's setup: its flattened config without ``SETUP_IGNORE`` and the artifact keys of
    ``SHARED_STAGES`` (the stage fingerprints), as {dotted key: JSON value}."""
    cfg = _flatten(rec.get("config") or {})
    out = {k: v for k, v in cfg.items() if not any(k == p or k.startswith(p + ".") for p in SETUP_IGNORE)}
    arts = rec.get("artifacts") or {}
    out.update({f"artifact/{s}": json.dumps(arts[s]) for s in SHARED_STAGES if s in arts})
    return out


def _setup_value(v: str) -> str:
    x = json.loads(v)
    return _num(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def assign_setups(records: Sequence[dict]) -> list[dict]:
    """Copies of the records with ``_block`` (the table block: family, the world when several,
    and the setting that tells the setups of one family apart) and ``_setup`` (an id) set.

    Runs of one world and family whose setups differ (:func:`setup_of`: e.g. 150 against 10
    distillation steps, other data sizes, other teachers) go into separate blocks named by the
    keys that differ (``gemma · stages.distill.steps=10``); a key a record lacks counts as a value."""
    records = [dict(r) for r in records]
    worlds = {r.get("world") for r in records}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r.get("world"), r["model"]), []).append(r)
    for (world, family), recs in groups.items():
        base = family if len(worlds) == 1 else f"{family} ({world})"
        setups = [setup_of(r) for r in recs]
        distinct = {json.dumps(s, sort_keys=True): s for s in setups}
        keys = sorted({k for s in distinct.values() for k in s})
        differ = [k for k in keys if len({s.get(k, "absent") for s in distinct.values()}) > 1]
        shown = [k for k in differ if not k.startswith("artifact/")] or differ
        for r, s in zip(recs, setups):
            sid = json.dumps(s, sort_keys=True)
            r["_setup"] = sid
            if len(distinct) == 1:
                r["_block"] = base
                continue
            parts = [f"{k}={_setup_value(s[k]) if k in s else 'absent'}" for k in shown[:3]]
            if len(shown) > 3:
                parts.append(f"+{len(shown) - 3} more keys")
            r["_block"] = f"{base} · " + ", ".join(parts)
    return records


def _run_name(rec: dict) -> str:
    name = (rec.get("run") or {}).get("name") or f"{rec['method']}-{rec['model']}-s{rec.get('seed')}"
    src = rec.get("_source") or (rec.get("run") or {}).get("id") or "no source"
    return f"{name} ({Path(src).name if not src.startswith('wandb:') else src})"


def dedupe(records: Sequence[dict], dropped: list[str] | None = None) -> list[dict]:
    """One record per (world, family, setup, method, hyperparameters, seed): the latest written.
    Each record replaced is logged as a warning and, with ``dropped``, described there."""
    if any("_setup" not in r for r in records):
        records = assign_setups(records)
    best = {}
    for i, rec in enumerate(records):
        key = (rec.get("world"), rec["model"], rec["_setup"], rec["method"],
               json.dumps(rec.get("hparams", {}), sort_keys=True, default=str), rec.get("seed"))
        if key in best:
            j, other = best[key]
            newer = (str(rec.get("written", "")), i) >= (str(other.get("written", "")), j)
            keep, drop = (rec, other) if newer else (other, rec)
            msg = (f"{_run_name(drop)}, written {drop.get('written', '?')}, replaced by {_run_name(keep)}, written "
                   f"{keep.get('written', '?')} (same setup, method, hyperparameters and seed)")
            if dropped is not None:
                log.warning("duplicate run dropped: %s", msg)
                dropped.append(msg)
            if not newer:
                continue
        best[key] = (i, rec)
    return [rec for _, rec in sorted(best.values(), key=lambda t: t[0])]


def varying_hparams(records: Sequence[dict]) -> dict[str, list[str]]:
    """Per method, the scalar hyperparameters that take more than one value across the records."""
    seen: dict[str, dict[str, set]] = {}
    for rec in records:
        for k, v in rec.get("hparams", {}).items():
            if _scalar(v) and k != "name":
                seen.setdefault(rec["method"], {}).setdefault(k, set()).add(json.dumps(v))
    return {m: [k for k, vals in hp.items() if len(vals) > 1] for m, hp in seen.items()}


def _num(v, digits: int = 3) -> str:
    """A hyperparameter value as written in a label: floats to ``digits`` significant digits
    (β=6.466422717414559 -> 6.47), integers and strings as they are."""
    return format(v, f".{digits}g") if isinstance(v, float) else str(v)


def digits_for(values: Iterable) -> int:
    """The fewest significant digits, at least 3, that keep the distinct values apart."""
    vals = {v for v in values if isinstance(v, float)}
    for d in range(3, 18):
        if len({_num(v, d) for v in vals}) == len(vals):
            return d
    return 17


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@functools.lru_cache(maxsize=None)
def _defaults_json(method: str, world: str | None, family: str | None) -> str | None:
    if not (CONF_DIR / "method" / f"{method}.yaml").is_file():
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf

    overrides = [f"method={method}"]
    overrides += [f"world={world}"] if world and (CONF_DIR / "world" / f"{world}.yaml").is_file() else []
    overrides += [f"model={family}"] if family and (CONF_DIR / "model" / f"{family}.yaml").is_file() else []
    backup = get_gh_backup()  # inside a Hydra app (the multirun callback) its own state comes back after
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        return json.dumps(OmegaConf.to_container(cfg.method, resolve=True))
    except Exception as e:  # a method this checkout does not know how to compose: no defaults
        log.debug("no defaults for method %s: %s", method, e)
        return None
    finally:
        restore_gh_from_backup(backup)


def method_defaults(method: str, world: str | None = None, family: str | None = None) -> dict | None:
    """The method's hyperparameters as ``conf/method/<method>.yaml`` sets them in that world and
    family (interpolations resolved), or None when this checkout has no such method."""
    d = _defaults_json(method, world, family)
    return None if d is None else json.loads(d)


def _differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a != b


def fixed_hparams(records: Sequence[dict], vary: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Per method, the scalar hyperparameters that do not vary across the records but differ from
    the method's defaults (:func:`method_defaults`) in at least one of them: a sweep run at γ=0
    only is "ADPA (γ=0)", not "ADPA"."""
    vary = varying_hparams(records) if vary is None else vary
    out: dict[str, list[str]] = {}
    for rec in records:
        m = rec["method"]
        defaults = method_defaults(m, rec.get("world"), rec.get("model"))
        if defaults is None:
            continue
        for k, v in rec.get("hparams", {}).items():
            if (k == "name" or not _scalar(v) or k in vary.get(m, []) or k in out.get(m, [])
                    or not (k not in defaults or _differs(v, defaults[k]))):
                continue
            out.setdefault(m, []).append(k)
    return out


@dataclass
class Row:
    block: str                     # model family (with the world when several are present)
    label: str
    kind: str                      # "teacher", "reference" (a reference student) or "method"
    method: str | None = None
    setting: tuple = ()            # the varying hyperparameters' (name, value) pairs
    values: dict[str, list[float]] = field(default_factory=dict)
    seeds: list = field(default_factory=list)

    def mean(self, key: str) -> float | None:
        v = self.values.get(key)
        return sum(v) / len(v) if v else None

    def std(self, key: str) -> float | None:
        v = self.values.get(key)
        if not v or len(v) < 2:
            return None
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def setting_digits(records: Sequence[dict]) -> dict[str, dict[str, int]]:
    """Per method and hyperparameter, the significant digits its labels use (:func:`digits_for`)."""
    vals: dict[str, dict[str, list]] = {}
    for rec in records:
        for k, v in rec.get("hparams", {}).items():
            vals.setdefault(rec["method"], {}).setdefault(k, []).append(v)
    return {m: {k: digits_for(v) for k, v in hp.items()} for m, hp in vals.items()}


def _natural(text: str) -> tuple:
    """Sort key reading digit runs as numbers: steps=4 before steps=10."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)


def _family_order(family: str) -> tuple:
    return (FAMILIES.index(family) if family in FAMILIES else len(FAMILIES), family)


def _method_order(method: str) -> tuple:
    order = list(methods())
    return (order.index(method) if method in order else len(order), method)


def _setting_order(setting: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))
                 for _, v in setting)


def method_label(method: str, setting: tuple, digits: dict[str, int] | None = None) -> str:
    """"student · DCKD (α=0.1)": the method and its setting (varying, then fixed non-default
    hyperparameters), floats to ``digits[name]`` significant digits (3 by default)."""
    name = f"student · {methods().get(method, method)}"
    if setting:
        name += " (" + ", ".join(f"{hparam(k, method).symbol}={_num(v, (digits or {}).get(k, 3))}"
                                 for k, v in setting) + ")"
    return name


def build_rows(records: Sequence[dict], columns: Sequence[Column]) -> list[Row]:
    """Rows of the table, ordered by block, then references (teachers first), then methods."""
    records = dedupe(records)
    vary = varying_hparams(records)
    fixed = fixed_hparams(records, vary)
    digits = setting_digits(records)
    keys = [c.key for c in columns]
    rows: dict[tuple, Row] = {}
    refs: dict[tuple, dict[str, dict]] = {}
    for rec in records:
        family, block = rec["model"], rec["_block"]
        bkey = (rec.get("world") or "", _family_order(family), _natural(block))
        for who, scores in rec.get("references", {}).items():  # one evaluation of a model, many records
            point = {k: v for k, v in scores.items() if not k.endswith(AUX_SUFFIXES)}
            refs.setdefault((bkey, block, who), {})[json.dumps(point, sort_keys=True)] = scores
        m = rec["method"]
        setting = tuple((k, rec["hparams"].get(k)) for k in [*vary.get(m, []), *fixed.get(m, [])])
        rkey = (bkey, 1, _method_order(m), _setting_order(setting), str(setting))
        row = rows.setdefault(rkey, Row(block, method_label(m, setting, digits.get(m)), "method", m, setting))
        row.seeds.append(rec.get("seed"))
        for k in keys:
            if isinstance(rec["scores"].get(k), (int, float)):
                row.values.setdefault(k, []).append(float(rec["scores"][k]))
    for (bkey, block, who), distinct in refs.items():
        order = REFERENCE_ORDER.index(who) if who in REFERENCE_ORDER else len(REFERENCE_ORDER)
        row = Row(block, who, "teacher" if who.startswith("teacher") else "reference")
        for scores in distinct.values():
            row.seeds.append(None)
            for k in keys:
                if isinstance(scores.get(k), (int, float)):
                    row.values.setdefault(k, []).append(float(scores[k]))
        rows[(bkey, 0, (order, who), (), "")] = row
    return [rows[k] for k in sorted(rows)]


def _rounded(x: float, fmt: str) -> float:
    return float(format(x, fmt)) + 0.0  # + 0.0 turns -0.0 into 0.0


def best_cells(rows: Sequence[Row], columns: Sequence[Column]) -> set[tuple[int, str]]:
    """(row index, key) of the best distilled student per column within each block (at least two
    values); references (the teachers, the SFT student) are never marked."""
    out = set()
    for block in dict.fromkeys(r.block for r in rows):
        idx = [i for i, r in enumerate(rows) if r.block == block and r.kind == "method"]
        for col in columns:
            vals = {i: _rounded(rows[i].mean(col.key), col.fmt) for i in idx if rows[i].mean(col.key) is not None}
            if len(vals) >= 2 and len(set(vals.values())) > 1:  # all tied at the shown precision: none
                top = max(vals.values())
                out |= {(i, col.key) for i, v in vals.items() if v == top}
    return out


def deltas(rows: Sequence[Row], columns: Sequence[Column]) -> dict[str, list[tuple[Row, dict[str, float | None]]]]:
    """Differences of means of the method rows against DPO (the best DPO row of the block, per
    column; DPO rows themselves are left out) and against the SFT student of the block. The
    baseline is the method whose plugin declares ``baseline`` (:func:`baselines`)."""
    out = {"baseline": [], "sft": []}
    baseline = baselines()
    for block in dict.fromkeys(r.block for r in rows):
        mine = [r for r in rows if r.block == block]
        sft = next((r for r in mine if r.label == SFT_STUDENT), None)
        dpo = [r for r in mine if r.kind == "method" and r.method in baseline]
        for r in (r for r in mine if r.kind == "method"):
            d_sft, d_dpo = {}, {}
            for col in columns:
                m = r.mean(col.key)
                base = sft.mean(col.key) if sft else None
                d_sft[col.key] = m - base if m is not None and base is not None else None
                bases = [b.mean(col.key) for b in dpo if b.mean(col.key) is not None]
                d_dpo[col.key] = m - max(bases) if m is not None and bases else None
            out["sft"].append((r, d_sft))
            if r.method not in baseline and dpo:
                out["baseline"].append((r, d_dpo))
    return out


# ----------------------------------------------------------------------------- writers
def _cell_text(row: Row, col: Column, pm: str) -> str | None:
    m = row.mean(col.key)
    if m is None:
        return None
    s = row.std(col.key)
    return format(m, col.fmt) + ("" if s is None else f" {pm} " + format(s, col.fmt))


def _delta_text(d: float | None, fmt: str) -> str | None:
    return None if d is None else format(_rounded(d, fmt), "+" + fmt)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rows: Sequence[Row], columns: Sequence[Column], n_runs: int, title: str = "Results") -> str:
    best = best_cells(rows, columns)
    head = ["Model", "Method", "Seeds"] + [c.header for c in columns]
    align = [":--", ":--", "--:"] + ["--:"] * len(columns)

    def table(body: list[list[str]], header: list[str], al: list[str]) -> list[str]:
        lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "|".join(al) + "|"]
        return lines + ["| " + " | ".join(cells) + " |" for cells in body]

    def block_name(i: int, seq) -> str:
        return seq[i].block if i == 0 or seq[i - 1].block != seq[i].block else ""

    body = []
    for i, r in enumerate(rows):
        cells = []
        for col in columns:
            t = _cell_text(r, col, "±")
            cells.append("—" if t is None else (f"**{t}**" if (i, col.key) in best else t))
        body.append([block_name(i, rows), _md_escape(r.label), str(len(r.seeds))] + cells)
    out = [f"# {title}", "",
           f"{n_runs} run{'s' if n_runs != 1 else ''}. Mean ± standard deviation over seeds (one seed: the mean "
           "alone). **Bold**: the best "
           "distilled student per column within a block; the references (teachers, SFT student) are shown for "
           "comparison and never bold. A method's label names the hyperparameters that vary and those set "
           "away from its defaults.", ""]
    out += table(body, head, align)
    dl = deltas(rows, columns)
    base = baseline_label()
    for kind, heading, note in (("baseline", f"Δ against {base}",
                                 f"the best {base} row of the same block, per column"),
                                ("sft", "Δ against the SFT student", "the SFT student (π_sft) of the same block")):
        if not dl[kind]:
            continue
        seq = [r for r, _ in dl[kind]]
        body = [[block_name(i, seq), _md_escape(r.label)] + [_delta_text(d[c.key], c.fmt) or "—" for c in columns]
                for i, (r, d) in enumerate(dl[kind])]
        out += ["", f"## {heading}", "", f"Difference of means against {note}.", ""]
        out += table(body, head[:2] + head[3:], align[:2] + align[3:])
    return "\n".join(out) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_UNICODE = {"α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "λ": r"$\lambda$", "π": r"$\pi$",
                 "τ": r"$\tau$", "θ": r"$\theta$", "Δ": r"$\Delta$", "·": r"$\cdot$", "±": r"$\pm$",
                 "—": "---", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "…": r"\ldots{}",
                 "≈": r"$\approx$", "→": r"$\to$"}


LATEX_GREEK = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "λ": r"\lambda", "π": r"\pi", "τ": r"\tau",
               "θ": r"\theta"}
# a Greek symbol with a subscript (π_sft) and/or a value (γ=0.05, α=1e-05): one math group
_LATEX_MATH = re.compile("([" + "".join(LATEX_GREEK) + r"])(?:_([A-Za-z0-9]+))?(=-?[0-9.]+(?:e[-+]?[0-9]+)?)?")


def _latex_plain(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch) or LATEX_UNICODE.get(ch) or ch for ch in text)


def latex_escape(text: str) -> str:
    """Plain text as LaTeX that compiles with pdflatex: specials escaped, Greek and symbols in
    math, a Greek symbol's subscript and value inside its math group (π_sft -> $\pi_{\mathrm{sft}}$,
    γ=0.05 -> $\gamma=0.05$)."""
    out, pos = [], 0
    text = str(text)
    for m in _LATEX_MATH.finditer(text):
        out.append(_latex_plain(text[pos:m.start()]))
        sym, sub, val = m.groups()
        math_ = LATEX_GREEK[sym] + (rf"_{{\mathrm{{{sub}}}}}" if sub else "")
        if val:
            num = val[1:]
            if "e" in num:  # 1e-05 -> 1 \times 10^{-5}
                mant, exp = num.split("e")
                num = (rf"{mant} \times " if mant != "1" else "") + rf"10^{{{int(exp)}}}"
            math_ += "=" + num
        out.append(f"${math_}$")
        pos = m.end()
    return "".join(out) + _latex_plain(text[pos:])


def latex(rows: Sequence[Row], columns: Sequence[Column], n_runs: int) -> str:
    best = best_cells(rows, columns)
    spec = "llr" + "r" * len(columns)
    head = " & ".join(latex_escape(h) for h in ["Model", "Method", "Seeds"] + [c.header for c in columns]) + r" \\"

    def tabular(lines: list[tuple[Row, list[str]]], colspec: str, header: str, caption: str, label: str) -> list[str]:
        out = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{colspec}}}", r"\toprule",
               header, r"\midrule"]
        for i, (r, cells) in enumerate(lines):
            first = i == 0 or lines[i - 1][0].block != r.block
            if first and i > 0:
                out.append(r"\midrule")
            out.append(" & ".join([latex_escape(r.block) if first else "", latex_escape(r.label), *cells]) + r" \\")
        return out + [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      r"\end{table}"]

    body = []
    for i, r in enumerate(rows):
        cells = []
        for col in columns:
            t = _cell_text(r, col, r"$\pm$")
            cells.append("--" if t is None else (rf"\textbf{{{t}}}" if (i, col.key) in best else t))
        body.append((r, [str(len(r.seeds))] + cells))
    out = ["% Generated by python -m eval.report; needs \\usepackage{booktabs}.",
           *tabular(body, spec, head, latex_escape(f"{n_runs} run{'s' if n_runs != 1 else ''}. Mean ± standard "
                                                   "deviation over seeds; bold: "
                                                   "the best distilled student per column within a block."),
                    "tab:results")]
    dl = deltas(rows, columns)
    dhead = " & ".join(latex_escape(h) for h in ["Model", "Method"] + [c.header for c in columns]) + r" \\"
    base = baseline_label()
    for kind, caption, label in (("baseline", f"Δ against {base} (the best {base} row of the block, per column).",
                                  f"tab:delta-{_slug(base.lower())}"),
                                 ("sft", "Δ against the SFT student of the block.", "tab:delta-sft")):
        if dl[kind]:
            lines = [(r, [("$" + t + "$") if (t := _delta_text(d[c.key], c.fmt)) else "--" for c in columns])
                     for r, d in dl[kind]]
            out += ["", *tabular(lines, "ll" + "r" * len(columns), dhead, latex_escape(caption), label)]
    return "\n".join(out) + "\n"


def csv_text(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """One line per row; per score: mean, std, n, delta_dpo, delta_sft (full precision)."""
    dl = deltas(rows, columns)
    d_dpo = {id(r): d for r, d in dl["baseline"]}
    d_sft = {id(r): d for r, d in dl["sft"]}
    hp = list(dict.fromkeys(k for r in rows for k, _ in r.setting))
    header = ["model", "method", "label", "kind", "seeds", *[f"hparam/{k}" for k in hp]]
    for c in columns:
        header += [c.key, f"{c.key} std", f"{c.key} n", f"{c.key} delta_dpo", f"{c.key} delta_sft"]

    def num(x) -> str:
        return "" if x is None else format(x, ".10g")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        setting = dict(r.setting)
        line = [r.block, r.method or "", r.label, r.kind, len(r.seeds), *[setting.get(k, "") for k in hp]]
        for c in columns:
            line += [num(r.mean(c.key)), num(r.std(c.key)), len(r.values.get(c.key, [])),
                     num(d_dpo.get(id(r), {}).get(c.key)), num(d_sft.get(id(r), {}).get(c.key))]
        w.writerow(line)
    return buf.getvalue()


# ----------------------------------------------------------------------------- plots
def _save_figure(fig, out_dir: Path, stem: str) -> dict[str, Path]:
    """``fig`` as ``<stem>.png`` (150 dpi) and ``<stem>.svg`` (no date, so a rerun writes the same
    bytes), keyed ``plot/<file>``."""
    written = {}
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=150 if ext == "png" else None, metadata={"Date": None} if ext == "svg" else None)
        written[f"plot/{stem}.{ext}"] = path
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def x_scale(xs: Iterable[float]) -> str:
    """"log" for a log-spaced grid of positive values, "symlog" for one with 0 (γ ∈ {0, 0.05, 0.1, …,
    0.8}), else "linear". Log-spaced: the values span 100× or more, or 10× or more with steps more
    even on the log scale than on the linear one (0.1, 0.5, 1 stays linear; 0.05, 0.1, 0.2, 0.4
    is log)."""
    xs = sorted(set(xs))
    pos = [x for x in xs if x > 0]
    if len(pos) < 2 or any(x < 0 for x in xs) or len(pos) < len(xs) - 1:
        return "linear"
    ratio = pos[-1] / pos[0]

    def cv(v: list[float]) -> float:
        m = sum(v) / len(v)
        return math.sqrt(sum((d - m) ** 2 for d in v) / len(v)) / m

    lin = [b - a for a, b in zip(pos, pos[1:])]
    lg = [math.log(b) - math.log(a) for a, b in zip(pos, pos[1:])]
    logspaced = ratio >= 100 or (ratio >= 10 and (len(pos) == 2 or cv(lg) < cv(lin)))
    if not logspaced:
        return "linear"
    return "log" if len(pos) == len(xs) else "symlog"


BAND_TEXT = {"t": "95% CI over seeds (Student's t)", "run": "95% CI of the run (bootstrap; one seed per point)"}


def band_kind(points: Iterable[dict]) -> str | None:
    """One kind of band per plot: "t" (the t interval over seeds) when any point has two or more
    seeds, then points of one seed get no band; else "run" (each run's own CI, e.g. the win rate's
    bootstrap over prompts) when every point has one; else None (no band)."""
    points = list(points)
    if any(len(p["v"]) >= 2 for p in points):
        return "t"
    if points and all(p["ci"] and p["ci"][0] is not None for p in points):
        return "run"
    return None


def _band(pt: dict, bounds: tuple[float, float] | None = None, kind: str | None = "auto") -> tuple[float, float]:
    """95% CI of a point, clipped to ``bounds``: kind "t", the t interval over its seeds (NaN with
    one seed); "run", its one run's own CI (NaN with several seeds or none); "auto", the first of
    the two the point allows."""
    v = pt["v"]
    m = sum(v) / len(v)
    if kind == "auto":
        kind = "t" if len(v) >= 2 else "run"
    if kind == "t" and len(v) >= 2:
        s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
        half = t95(len(v)) * s / math.sqrt(len(v))
        lo, hi = m - half, m + half
    elif kind == "run" and len(v) == 1 and pt["ci"] and pt["ci"][0] is not None:
        lo, hi = pt["ci"][0]
    else:
        return math.nan, math.nan
    return (lo, hi) if bounds is None else (max(lo, bounds[0]), min(hi, bounds[1]))


def sensitivity_plots(records: Sequence[dict], columns: Sequence[Column], out_dir: Path) -> dict[str, Path]:
    """PNG and SVG of each metric against each hyperparameter that varies within a method: one line
    per table block (family, and setup when several) and setting of the method's other varying
    hyperparameters; the mean over seeds; one kind of 95% band per plot (:func:`band_kind`), named
    in the legend; log or symlog x for log-spaced grids (:func:`x_scale`); the legend outside the
    axes; a dotted line per block for the SFT student."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    records = dedupe(records)
    vary = varying_hparams(records)
    fixed = fixed_hparams(records, vary)
    digits = setting_digits(records)
    written = {}
    for method in sorted({r["method"] for r in records}, key=_method_order):
        mine = [r for r in records if r["method"] == method]
        dg = digits.get(method, {})
        for h in vary.get(method, []):
            xs_all = {r["hparams"].get(h) for r in mine}
            if len(xs_all) < 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all):
                continue
            others = [k for k in vary[method] if k != h]
            fixed_text = ", ".join(f"{hparam(k, method).symbol}={_num(mine[0]['hparams'].get(k), dg.get(k, 3))}"
                                   for k in fixed.get(method, []))
            for col in columns:
                series: dict[tuple, dict] = {}
                for r in mine:
                    v = r["scores"].get(col.key)
                    if not isinstance(v, (int, float)):
                        continue
                    skey = (_family_order(r["model"]), r["_block"],
                            tuple((k, _num(r["hparams"].get(k), dg.get(k, 3))) for k in others))
                    pt = series.setdefault(skey, {}).setdefault(r["hparams"][h], {"v": [], "ci": []})
                    pt["v"].append(float(v))
                    lo, hi = r["scores"].get(col.key + "_ci_low"), r["scores"].get(col.key + "_ci_high")
                    pt["ci"].append((lo, hi) if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else None)
                if not series or len({x for pts in series.values() for x in pts}) < 2:
                    continue
                kind = band_kind(p for pts in series.values() for p in pts.values())
                lone = kind == "t" and any(len(p["v"]) < 2 for pts in series.values() for p in pts.values())
                with matplotlib.rc_context({"svg.hashsalt": "distill-bench", "font.size": 9}):
                    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
                    FigureCanvasAgg(fig)
                    ax = fig.add_subplot()
                    xs_used, ringed = [], False
                    for (_, block, other), pts in sorted(series.items()):
                        xs = sorted(pts)
                        xs_used += xs
                        means = [sum(pts[x]["v"]) / len(pts[x]["v"]) for x in xs]
                        lo, hi = zip(*(_band(pts[x], col.bounds, kind) for x in xs))
                        name = block + "".join(f", {hparam(k, method).symbol}={v}" for k, v in other)
                        (line,) = ax.plot(xs, means, marker="o", label=name)
                        if kind is not None:
                            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
                            ok = [i for i in range(len(xs)) if not math.isnan(lo[i])  # isolated: no band around
                                  and all(j < 0 or j >= len(xs) or math.isnan(lo[j]) for j in (i - 1, i + 1))]
                            ax.errorbar([xs[i] for i in ok], [means[i] for i in ok], fmt="none", capsize=3,
                                        alpha=0.5, ecolor=line.get_color(),
                                        yerr=[[means[i] - lo[i] for i in ok], [hi[i] - means[i] for i in ok]])
                        one = [i for i in range(len(xs)) if lone and len(pts[xs[i]]["v"]) < 2]
                        if one:  # one seed under a t band: hollow, no interval
                            ax.plot([xs[i] for i in one], [means[i] for i in one], "o", mfc="white",
                                    color=line.get_color())
                        top = max(means)
                        if sum(format(m, col.fmt) == format(top, col.fmt) for m in means) == 1:  # one best: ringed
                            b = means.index(top)
                            ax.plot([xs[b]], [top], "o", ms=13, mfc="none", mec=line.get_color(), mew=1.5)
                            ax.annotate(format(top, col.fmt), (xs[b], top), xytext=(0, 9), textcoords="offset points",
                                        ha="center", va="bottom", fontsize=8, fontweight="bold",
                                        color=line.get_color())
                            ringed = True
                        sft = _sft_mean(mine, block, col.key)
                        if sft is not None and not other:
                            ax.axhline(sft, color=line.get_color(), linestyle=":", linewidth=1,
                                       label=f"{block}: SFT student (π_sft)")
                    scale = x_scale(xs_used)
                    lo_x, hi_x = min(xs_used), max(xs_used)
                    if scale == "log":
                        ax.set_xscale("log")
                        ax.set_xlim(lo_x / (hi_x / lo_x) ** 0.04, hi_x * (hi_x / lo_x) ** 0.04)
                    elif scale == "symlog":
                        thresh = min(x for x in xs_used if x > 0)
                        ax.set_xscale("symlog", linthresh=thresh, linscale=0.5)
                        ax.set_xlim(-0.15 * thresh, hi_x * (hi_x / thresh) ** 0.04)
                    ax.minorticks_off()
                    ticks = sorted(set(xs_used))
                    if len(ticks) <= 12:  # the swept values themselves, rounded as in the labels
                        ax.set_xticks(ticks, [_num(x, dg.get(h, 3)) for x in ticks])
                    ax.set_xlabel(hparam(h, method).axis + {"log": ", log scale", "symlog": ", log scale above "
                                                            f"{_num(min([x for x in ticks if x > 0] or [0]))}"}
                                  .get(scale, ""))
                    ax.set_ylabel(col.axis)
                    n_seeds = sorted({len(p["v"]) for pts in series.values() for p in pts.values()})
                    seeds = f"{n_seeds[0]}" if len(n_seeds) == 1 else f"{n_seeds[0]}–{n_seeds[-1]}"
                    title = methods().get(method, method) + (f" ({fixed_text})" if fixed_text else "")
                    ax.set_title(f"{title}: {col.header} against {hparam(h, method).symbol}\n"
                                 f"mean over {seeds} seed{'s' if n_seeds[-1] > 1 else ''} per point", fontsize=9)
                    handles, _ = ax.get_legend_handles_labels()
                    if kind is not None:
                        handles.append(Patch(color="grey", alpha=0.2, label="band: " + BAND_TEXT[kind]))
                    else:
                        handles.append(Patch(color="none", label="no band: one seed and no CI per point"))
                    if lone:
                        handles.append(Line2D([], [], marker="o", mfc="white", color="grey", linestyle="none",
                                              label="one seed: no interval"))
                    if ringed:
                        handles.append(Line2D([], [], marker="o", ms=10, mfc="none", mec="grey", mew=1.5,
                                              linestyle="none", label="best setting of the line (its mean)"))
                    fig.legend(handles=handles, fontsize=8, loc="outside lower center",
                               ncols=min(2, len(handles)), frameon=False)
                    ax.grid(alpha=0.3)
                    stem = f"sensitivity_{_slug(method)}_{_slug(h)}_{_slug(col.key)}"
                    written.update(_save_figure(fig, out_dir, stem))
    return written


def comparison_plots(rows: Sequence[Row], columns: Sequence[Column], out_dir: Path) -> dict[str, Path]:
    """PNG and SVG per block with two or more distilled students and per column: one bar per
    student row (mean over seeds, error bar the 95% t interval over seeds; a row of one seed is
    hatched, without interval), each bar's value above it, the best ones (tied at the table's
    precision) in bold with their bars outlined, the references as horizontal lines with their
    values in the legend (the SFT student dotted, the teachers dashed; references of equal value
    share one line and one label; a teacher over 1.5x the students' range is named, not drawn), the
    legend below the axes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    written = {}
    for block in dict.fromkeys(r.block for r in rows):
        mine = [r for r in rows if r.block == block]
        for col in columns:
            students = [r for r in mine if r.kind == "method" and r.mean(col.key) is not None]
            if len(students) < 2:
                continue
            with matplotlib.rc_context({"svg.hashsalt": "distill-bench", "font.size": 9}):
                fig = Figure(figsize=(6.4, 4.8), layout="constrained")
                FigureCanvasAgg(fig)
                ax = fig.add_subplot()
                means = [r.mean(col.key) for r in students]
                halves = []
                for r in students:
                    v = r.values[col.key]
                    halves.append(t95(len(v)) * r.std(col.key) / math.sqrt(len(v)) if len(v) >= 2 else 0.0)
                lone = [len(r.values[col.key]) < 2 for r in students]
                xs = list(range(len(students)))
                ax.bar(xs, means, color="tab:blue", alpha=0.8, edgecolor="tab:blue")
                for x, m, lo in zip(xs, means, lone):
                    if lo:
                        ax.bar([x], [m], color="white", hatch="//", edgecolor="tab:blue")
                ax.errorbar([x for x in xs if not lone[x]], [means[x] for x in xs if not lone[x]],
                            yerr=[halves[x] for x in xs if not lone[x]], fmt="none", ecolor="black", capsize=4)
                # the value of each bar above it (its error bar); the best students (as the table rounds
                # them: ties share it) in bold with a dark edge
                shown = [format(m, col.fmt) for m in means]
                best = [x for x in xs if shown[x] == format(max(means), col.fmt)]
                for x, m, h in zip(xs, means, halves):
                    ax.annotate(shown[x], (x, m + h), xytext=(0, 2), textcoords="offset points", ha="center",
                                va="bottom", fontsize=8, fontweight="bold" if x in best else "normal")
                ax.bar(best, [means[x] for x in best], fill=False, edgecolor="black", linewidth=1.6)
                # references as lines; references with the same value (at the table's precision) share one.
                # A teacher far above the students (over 1.5x their range) is named in the legend with its
                # value but not drawn, so that the students' bars keep a readable scale.
                floor = col.bounds[0] if col.bounds else min(0.0, *means)
                reach = max(m + h for m, h in zip(means, halves))
                styles = {SFT_STUDENT: ("grey", ":")}
                refs: dict[str, list] = {}
                for ref in (r for r in mine if r.kind != "method" and r.mean(col.key) is not None):
                    refs.setdefault(format(ref.mean(col.key), col.fmt), []).append(ref)
                drawn = []
                for i, same in enumerate(refs.values()):
                    color, ls = styles.get(same[0].label, (f"C{i + 1}", "--"))
                    value = same[0].mean(col.key)
                    label = " = ".join(r.label for r in same) + f": {format(value, col.fmt)}"
                    if same[0].label != SFT_STUDENT and value - floor > 1.5 * (reach - floor) > 0:
                        ax.plot([], [], color=color, linestyle=ls, linewidth=1.2, label=label + " (above the axis)")
                        continue
                    ax.axhline(value, color=color, linestyle=ls, linewidth=1.2, label=label)
                    drawn.append(value)
                ax.set_xticks(xs, [r.label.removeprefix("student · ") for r in students], rotation=20, ha="right")
                ax.set_ylabel(col.axis)
                if col.bounds:  # up to the highest bar, interval or drawn line, with room for the values
                    top = max([*means, reach, *drawn])
                    room = 0.12 * (top - col.bounds[0]) + 1e-9
                    # a line at the scale's end (a teacher at 100%) stays visible just below the frame
                    ax.set_ylim(col.bounds[0], min(col.bounds[1] + 0.03 * (col.bounds[1] - col.bounds[0]), top + room))
                n = sorted({len(r.values[col.key]) for r in students})
                seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
                ax.set_title(f"{block}: {col.header} by method\nmean over {seeds} seed{'s' if n[-1] > 1 else ''} "
                             "per method", fontsize=9)
                handles, _ = ax.get_legend_handles_labels()
                handles.append(Patch(fill=False, edgecolor="black", linewidth=1.6,
                                     label="best distilled student" + ("s (tied)" if len(best) > 1 else "")
                                     + " (value in bold)"))
                if not all(lone):
                    handles.append(Patch(color="none", label="error bar: 95% CI over seeds (Student's t)"))
                if any(lone):
                    handles.append(Patch(facecolor="white", hatch="//", edgecolor="tab:blue",
                                         label="one seed: no interval"))
                fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
                ax.grid(axis="y", alpha=0.3)
                stem = f"methods_{_slug(block)}_{_slug(col.key)}"
                written.update(_save_figure(fig, out_dir, stem))
    return written


def _sft_mean(records: Sequence[dict], block: str, key: str) -> float | None:
    vals = {json.dumps(r["references"][SFT_STUDENT].get(key)) for r in records
            if SFT_STUDENT in r.get("references", {}) and isinstance(r["references"][SFT_STUDENT].get(key), (int, float))
            and r["_block"] == block}
    vals = [json.loads(v) for v in vals]
    return sum(vals) / len(vals) if vals else None


# ----------------------------------------------------------------------------- entry points
# ----------------------------------------------------------------------------- Arena-Hard, MT-Bench extras
ARENA = "eval/arena_hard/"
ARENA_CI_KEYS = {"score_ci_low": "ci_lower", "score_ci_high": "ci_upper", "ci_low": "ci_lower", "ci_high": "ci_upper",
                 "elo_ci_low": "elo_lower", "elo_ci_high": "elo_upper"}


def _arena_details(rec: dict, who: str) -> dict | None:
    d = ((rec.get("benchmarks") or {}).get(who) or {}).get("arena_hard")
    return d if isinstance(d, dict) and d.get("judgments") else None


def pool_arena_hard(records: Sequence[dict]) -> tuple[list[dict], dict]:
    """The official Arena-Hard CI over every model of the records: arena-hard-auto's
    ``show_result.py`` fits and bootstraps all models' battles together, so a model's CI depends
    on the others evaluated with it. Each record's student is a model of its own (two runs are two
    models even under one name); a reference evaluated identically by several records (the same
    judgments) counts once. Returns (records with their Arena-Hard CIs replaced by the pooled ones
    and ``ci_n_models`` set, info), unchanged records when fewer than two models have judgment
    files (then each CI stays the per-model one)."""
    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import coverage

    models: dict[str, list[dict]] = {}
    where: list[tuple[int, str, str]] = []   # (record index, "student" or reference label, pooled model id)
    seen: dict[tuple[str, str], str] = {}
    baselines, rounds = set(), set()
    for i, rec in enumerate(records):
        for who in ("student", *rec.get("references", {})):
            d = _arena_details(rec, who)
            if d is None or (who == "student" and ARENA + "score" not in rec.get("scores", {})):
                continue
            path = Path(d["judgments"])
            try:
                text = path.read_text()
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
                coverage.arena_judgments(rows, coverage.answer_ids(d.get("answers")), path, games=None)
            except (OSError, json.JSONDecodeError) as e:
                log.warning("Arena-Hard pooled CI: cannot read %s (%s); CIs stay per-model", path, e)
                return list(records), {}
            if who == "student":
                mid = f"run{i}:{rows[0]['model'] if rows else rec.get('method')}"
            else:
                key = (who, text)
                mid = seen.setdefault(key, f"{who}#{len(seen)}")
            models.setdefault(mid, [dict(r, model=mid) for r in rows])
            where.append((i, who, mid))
            baselines.add(d.get("baseline") or ah.BASELINE_MODEL)
            rounds.add(int(d.get("n_bootstrap") or ah.N_BOOTSTRAP))
    if len(models) < 2:
        return list(records), {}
    if len(baselines) > 1 or len(rounds) > 1:
        log.warning("Arena-Hard pooled CI: the runs used different baselines %s or bootstrap rounds %s; CIs stay "
                    "per-model", sorted(baselines), sorted(rounds))
        return list(records), {}
    pooled = ah.score_judgments([r for rows in models.values() for r in rows], baseline=baselines.pop(),
                                n_rounds=rounds.pop())
    out = [dict(rec, scores=dict(rec.get("scores", {})), references={k: dict(v) for k, v in
                                                                      rec.get("references", {}).items()})
           for rec in records]
    for i, who, mid in where:
        target = out[i]["scores"] if who == "student" else out[i]["references"][who]
        for key, src in ARENA_CI_KEYS.items():
            if ARENA + key in target:
                target[ARENA + key] = float(pooled[mid][src])
        target[ARENA + "ci_n_models"] = float(len(models))
    return out, {"n_models": len(models), "models": sorted(models)}


def setup_note(records: Sequence[dict]) -> str | None:
    """One sentence when a model family's runs were split into blocks by their setups."""
    split = sorted({r["_block"] for r in records if " · " in r.get("_block", "")})
    if not split:
        return None
    return ("Runs of one model family whose setups differ (data, teachers, SFT student, stage steps or sizes, "
            "evaluation: the results' config and stage fingerprints) are not compared: each setup is a block "
            "of its own, named by the keys that differ (" + "; ".join(split) + ").")


def arena_ci_note(records: Sequence[dict]) -> str | None:
    """One sentence saying which Arena-Hard CI the records carry (None without Arena-Hard)."""
    ns = {rec["scores"].get(ARENA + "ci_n_models", 1.0) for rec in records if ARENA + "score" in rec.get("scores", {})}
    if not ns:
        return None
    if ns == {1.0}:
        return ("Arena-Hard 95% CI: per-model bootstrap (each model's battles alone; the official CI pools every "
                "model evaluated together).")
    return (f"Arena-Hard 95% CI: the official bootstrap (arena-hard-auto show_result.py: 100 rounds, seed 42) "
            f"pooled over {max(ns):g} models (every student and distinct reference of these runs).")


def mt_bench_categories(records: Sequence[dict]) -> tuple[list[Row], list[Column]]:
    """Rows and columns of the per-category MT-Bench table (FastChat's eight categories)."""
    from eval.benchmarks.mt_bench import CATEGORIES

    cols = [Column(f"eval/mt_bench/category/{c}", "STEM" if c == "stem" else c.capitalize(), ".2f",
                   f"MT-Bench {c} (1–10)") for c in CATEGORIES]
    present = {k for rec in records for scores in (rec.get("scores", {}), *rec.get("references", {}).values())
               for k in scores}
    cols = [c for c in cols if c.key in present]
    if not cols:
        return [], []
    cols.append(Column("eval/mt_bench/score", "Overall", ".2f", "MT-Bench score (1–10)"))
    return build_rows(records, cols), cols


def write_report(records: Sequence[dict], out_dir: str | os.PathLike, metrics: Sequence[str] | None = None,
                 title: str = "Results") -> dict[str, Path]:
    """Write ``report.md``, ``report.tex``, ``report.csv`` and the sensitivity plots into ``out_dir``;
    return their paths ("markdown", "latex", "csv", and "plot/<file name>" per plot file), and
    ``ablation.md`` ("ablation") when the records hold teacher-signal ablations (``eval.ablation``).

    Arena-Hard CIs are first replaced by the official bootstrap pooled over every model of the
    records (:func:`pool_arena_hard`); the MT-Bench per-category table follows the main one."""
    if not records:
        raise ReportError("no results to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dropped: list[str] = []
    records = dedupe(assign_setups(records), dropped)  # warns about each duplicate once
    records, _ = pool_arena_hard(records)
    columns = columns_for(records, metrics)
    rows = build_rows(records, columns)
    n_runs = len(records)
    paths = {"markdown": out_dir / "report.md", "latex": out_dir / "report.tex", "csv": out_dir / "report.csv"}
    md, tex = markdown(rows, columns, n_runs, title), latex(rows, columns, n_runs)
    notes = [n for n in (setup_note(records), arena_ci_note(records)) if n]
    if dropped:
        notes.append(f"{len(dropped)} duplicate run{'s' if len(dropped) > 1 else ''} dropped (the one written "
                     "later is kept): " + "; ".join(dropped) + ".")
    for note in notes:
        md += f"\n{note}\n"
        tex += f"\n% {note}\n"
    cat_rows, cat_cols = mt_bench_categories(records)
    if cat_rows:
        body = [[_md_escape(r.block), _md_escape(r.label)] + [_cell_text(r, c, "±") or "—" for c in cat_cols]
                for r in cat_rows]
        md += ("\n## MT-Bench per category\n\nMean of both turns' scores per category (FastChat's radar plot "
               "categories), mean ± std over seeds.\n\n| Model | Method | " + " | ".join(c.header for c in cat_cols)
               + " |\n|:--|:--|" + "--:|" * len(cat_cols) + "\n" + "".join("| " + " | ".join(b) + " |\n" for b in body))
        tex += ("\n\\begin{table}[t]\n\\centering\n\\small\n\\begin{tabular}{ll" + "r" * len(cat_cols) + "}\n\\toprule\n"
                + " & ".join(["Model", "Method", *[c.header for c in cat_cols]]) + " \\\\\n\\midrule\n"
                + "".join(" & ".join([latex_escape(r.block), latex_escape(r.label)]
                                     + [(_cell_text(r, c, r"$\pm$") or "--") for c in cat_cols]) + " \\\\\n"
                          for r in cat_rows)
                + "\\bottomrule\n\\end{tabular}\n\\caption{MT-Bench per category (mean of both turns).}\n"
                  "\\label{tab:mt-bench-categories}\n\\end{table}\n")
    paths["markdown"].write_text(md)
    paths["latex"].write_text(tex)
    paths["csv"].write_text(csv_text(rows, columns))
    ablation = ablation_markdown(paired_differences(records))
    if ablation:
        paths["ablation"] = out_dir / "ablation.md"
        paths["ablation"].write_text(ablation)
    plot_cols = columns if metrics else [c for c in columns if c.headline]
    paths.update(sensitivity_plots(records, plot_cols, out_dir))
    paths.update(comparison_plots(rows, [c for c in plot_cols if c in columns], out_dir))
    return paths


class ReportCallback(Callback):
    """At the end of a Hydra multirun: the report of that multirun's results (``run.group`` = the
    sweep folder's name) into ``<sweep dir>/report/``; with a W&B logger in the config, also a W&B
    run (offline without an API key) holding the table as a ``wandb.Table`` and the plots as images."""

    def __init__(self, subdir: str = "report", wandb: bool = True):
        self.subdir, self.wandb = subdir, wandb

    def on_multirun_end(self, config, **kwargs) -> None:
        from distill.results import MULTIRUN_GROUP_ENV, multirun_group

        sweep_dir = Path(config.hydra.sweep.dir)
        group = os.environ.get(MULTIRUN_GROUP_ENV) or multirun_group(config)
        records = load_records([config.paths.results], group=group)
        if not records:
            log.warning("report: no results of group %s in %s", group, config.paths.results)
            return
        paths = write_report(records, sweep_dir / self.subdir, title=f"Results: {group}")
        log.info("report written to %s", paths["markdown"])
        logger_cfg = config.get("logger") or {}
        if self.wandb and "wandb" in logger_cfg:
            try:
                log_to_wandb(paths, logger_cfg["wandb"], sweep_dir, group)
            except Exception as e:  # the report on disk is what matters; W&B is a copy of it
                log.warning("report: not logged to W&B (%s)", e)


def log_to_wandb(paths: dict[str, Path], wandb_cfg, sweep_dir: Path, group: str | None = None) -> None:
    import wandb

    from distill.runs import wandb_offline

    run = wandb.init(project=wandb_cfg.get("project") or "distill-bench", entity=wandb_cfg.get("entity"),
                     group=wandb_cfg.get("group") or group or sweep_dir.name, name=f"report-{sweep_dir.name}",
                     job_type="report", dir=str(sweep_dir), mode="offline" if wandb_offline() else "online")
    try:
        rows = list(csv.reader(io.StringIO(paths["csv"].read_text())))
        run.log({"report/table": wandb.Table(columns=rows[0], data=rows[1:]),
                 **{f"report/{p.stem}": wandb.Image(str(p)) for k, p in paths.items()
                    if k.startswith("plot/") and p.suffix == ".png"}})
    finally:
        run.finish()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default="results",
                    help="a results folder (or JSON files' folder), or a W&B project entity/project "
                         "(prefix wandb: to force W&B); default: results")
    ap.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    ap.add_argument("--metric", nargs="+", metavar="KEY", help="only these score keys (columns and plots)")
    ap.add_argument("--group", help="only the runs of this group (a multirun's or a local sweep's name)")
    ap.add_argument("--title", default=None, help="the report's title (default: Results, or Results: <group>)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    src = args.source
    try:
        if src.startswith("wandb:") or (not Path(src).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", src)):
            records = read_wandb(src.removeprefix("wandb:"), group=args.group)
        elif Path(src).exists():
            records = load_records([src], group=args.group)
        else:
            raise ReportError(f"{src}: no such results folder (nor an entity/project of W&B)")
        if not records:
            raise ReportError(f"no results in {src}" + (f" of group {args.group}" if args.group else ""))
        title = args.title or ("Results: " + args.group if args.group else "Results")
        paths = write_report(records, args.out, args.metric, title)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind:>10}: {path}" if not kind.startswith("plot/") else f"      plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
