"""Methods as registered plugins.

A method is one module in ``distill/methods/`` (plus its ``conf/method/<name>.yaml``) that defines
``METHOD``, an instance of a :class:`Method` subclass, which declares everything the rest of the
project needs to know about it:

* its typed config, a dataclass whose fields are the hyperparameters, each made with :func:`hp`
  (default, range, the paper's label, the symbol used in tables and plots); :meth:`Method.check`
  validates a config node against it (``distill.validate``), the report labels and plots with it
  (``eval.report``), the local sweeps take their ranges from it (``sweeps.local``);
* the artifacts its training reads, as generic requests to :class:`distill.stages.Pipeline`
  (:meth:`Method.inputs`: a teacher top-k cache of which models on which data at which k, samples of
  which model with which sampling, sequence scores of which model, the student of another method
  config, ...); the recipe receives exactly these, and the dry run (``distill.plan``) and the
  distill key (``Pipeline.recipe_inputs``) visit the same declaration;
* its recipe (:meth:`Method.recipe`: batches and module, then ``pipe.fit``);
* an example batch and a module for the bench (:meth:`Method.example_items`, :meth:`Method.bench_module`);
* what the dry run needs to estimate its training stage (:meth:`Method.plan`).

:func:`registry` imports every module of the package and collects their ``METHOD``; adding a file
registers a method, nothing else lists them. :func:`lookup` finds the plugin of a method config by
``method.name`` (or, for a config whose name was changed, by the last part of its
``recipe._target_``, the name the first six methods' configs carry for their stored artifact keys).
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf


# ----------------------------------------------------------------------------- hyperparameters
@dataclass(frozen=True)
class Hparam:
    """One hyperparameter as a method declares it."""

    name: str                      # the config key (method.<name>)
    symbol: str                    # in tables and plot legends: "γ"
    label: str                     # the paper's meaning, for axes and messages: "ADPA advantage weight"
    unit: str = "dimensionless"    # the axis unit
    lo: float | None = None        # lower bound (None: none)
    lo_open: bool = False          # lo itself excluded
    hi: float | None = None
    hi_open: bool = False
    kind: str = "number"           # "number", "integer", "bool" or "choice"
    choices: tuple = ()            # kind "choice": the allowed values
    why: str = ""                  # what the bound means, in the error message ("0 turns it off")
    suggest: Any = None            # the value the error message proposes

    @property
    def axis(self) -> str:
        """The plot axis label: ``"γ, ADPA advantage weight (dimensionless)"``."""
        return f"{self.symbol}, {self.label} ({self.unit})"

    def ok(self, v: Any) -> bool:
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "choice":
            return isinstance(v, str) and v in self.choices
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.kind == "integer" and not isinstance(v, int):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def range_text(self) -> str:
        """``"must be >= 0 (ADPA's advantage weight; 0 is SFT on y_w)"``."""
        if self.kind == "bool":
            return "must be true or false"
        if self.kind == "choice":
            return "must be one of " + ", ".join(self.choices) + (f" ({self.why})" if self.why else "")
        what = "an integer " if self.kind == "integer" else ""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            text = f"must be in {'(' if self.lo_open else '['}{lo:g}, {hi:g}{')' if self.hi_open else ']'}"
        elif lo is not None:
            text = f"must be {what}{'>' if self.lo_open else '>='} {lo:g}"
        elif hi is not None:
            text = f"must be {what}{'<' if self.hi_open else '<='} {hi:g}"
        else:
            text = f"must be {what or 'a number'}".rstrip()
        return text + (f" ({self.why})" if self.why else "")

    def bound_text(self) -> str:
        """The range in symbols, for sweep files: ``"γ ≥ 0"``, ``"temperature > 0"``."""
        if self.kind == "choice":
            return f"{self.name} ∈ {{{', '.join(self.choices)}}}"
        who = self.symbol if len(self.symbol) == 1 and not self.symbol.isascii() else self.name
        parts = []
        if self.lo is not None:
            parts.append(f"{who} {'>' if self.lo_open else '≥'} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{who} {'<' if self.hi_open else '≤'} {self.hi:g}")
        return ", ".join(parts) or who


def hp(default: Any, symbol: str, label: str, **range_: Any):
    """A hyperparameter field of a method's config dataclass: its default (the paper's or the code's,
    as the field's comment says), the symbol and label of tables and plots, and its range
    (:class:`Hparam`: ``lo``, ``lo_open``, ``hi``, ``hi_open``, ``kind``, ``why``, ``suggest``, ``unit``)."""
    return dataclasses.field(default=default, metadata={"hparam": {"symbol": symbol, "label": label, **range_}})


def hparams_of(config_cls: type) -> dict[str, Hparam]:
    """The :class:`Hparam` of every field of a method's config dataclass, in declaration order."""
    out = {}
    for f in dataclasses.fields(config_cls):
        meta = dict(f.metadata.get("hparam") or {})
        if not meta:
            continue
        meta.setdefault("suggest", f.default)
        out[f.name] = Hparam(name=f.name, **meta)
    return out


# ----------------------------------------------------------------------------- the plugin
class Method:
    """A method plugin; subclass it in ``distill/methods/<module>.py`` and set ``METHOD = YourMethod()``.

    Class attributes: ``names`` (the ``method.name`` values it trains, first the main one), ``labels``
    (name -> the paper's label, for tables; may include aliases used by older records), ``order``
    (position in tables: the baseline first), ``config`` (the typed config dataclass of each name:
    ``configs`` maps a name to another dataclass where variants differ), ``baseline`` (the report's
    Δ column compares against it), ``token_level`` (compares the teacher's and the student's token
    distributions id by id: both need one vocabulary and chat template), ``paper`` (the source)."""

    names: ClassVar[tuple[str, ...]] = ()
    labels: ClassVar[dict[str, str]] = {}
    order: ClassVar[int] = 100
    config: ClassVar[type | None] = None
    configs: ClassVar[dict[str, type]] = {}
    baseline: ClassVar[bool] = False
    token_level: ClassVar[bool] = False
    bench: ClassVar[bool] = True   # run by bench/run.py (False where the step is another method's)
    # bench/run.py's step-time target: "token" (≤ 1.5× an SFT step per token), "prompt" (≤ n_keep + 1
    # SFT steps per prompt) or None
    bench_target: ClassVar[str | None] = None
    paper: ClassVar[str] = ""

    # -- declaration
    def config_for(self, name: str | None = None) -> type | None:
        return self.configs.get(name or "", self.config)

    def hparams(self, name: str | None = None) -> dict[str, Hparam]:
        cls = self.config_for(name)
        return hparams_of(cls) if cls is not None else {}

    def label(self, name: str | None = None) -> str:
        return self.labels.get(name or self.names[0], name or self.names[0])

    def nested(self, m: DictConfig) -> dict[str, DictConfig]:
        """Method configs inside ``m`` that are trained first (ADPA+'s ``dckd``), by key."""
        return {}

    def inputs(self, pipe, m: DictConfig) -> dict[str, Any]:
        """Every artifact the recipe reads besides the SFT student and the data, by name, requested
        from ``pipe``'s generic stages. Called by the recipe (builds them) and, with a key-only store,
        by the dry run and :meth:`distill.stages.Pipeline.recipe_inputs` (builds nothing)."""
        return {}

    def teacher_data(self, m: DictConfig, cfg: DictConfig) -> dict:
        """Extra instruction data the teachers learn for this method (PAD's comparison questions in
        the toy world): part of the ``sft_teacher`` key; empty for most methods."""
        return {}

    def check(self, m: DictConfig, prefix: str, cfg: DictConfig) -> list[str]:
        """Relations between this method's keys beyond each field's own range (problems, each naming
        the key, the value, the range and the fix)."""
        return []

    def plan(self, m: dict) -> dict:
        """For the dry run's estimate of the distill stage: ``seqs`` per item, the ``rows`` it trains
        on (``pairs`` or ``prompts``), ``reference_pass`` (a frozen pass over the pairs before
        training, DPO's) and ``online`` (frozen-model work per step: ``("forward", role, seqs)`` and
        ``("generate", role, seqs)`` tuples, scaled by a probability when given as a 4th item)."""
        return {"seqs": 2, "rows": "pairs", "reference_pass": False, "online": ()}

    # -- training
    def recipe(self, pipe, m: DictConfig, inputs: dict, stage_cfg, out, work, logger=None) -> None:
        raise NotImplementedError

    # -- bench
    def example_items(self, b: int, prompt: int, response: int, vocab: int, k: int, n_keep: int, rng, gen
                      ) -> list[dict]:
        """``b`` items in the shape the method's module reads (random ids, teacher rows as cached)."""
        raise NotImplementedError

    def bench_module(self, model, optimizer, name: str | None = None):
        """The method's module (of variant ``name``) at its default hyperparameters, for the bench."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- the registry
@lru_cache(maxsize=None)
def _discover() -> tuple[Method, ...]:
    import distill.methods as pkg

    found: list[Method] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        plugin = getattr(mod, "METHOD", None)
        if isinstance(plugin, Method):
            found.append(plugin)
    names = [n for p in found for n in p.names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RuntimeError(f"method names registered twice in distill/methods: {', '.join(dup)}")
    return tuple(sorted(found, key=lambda p: (p.order, p.names[0])))


def registry() -> tuple[Method, ...]:
    """Every registered method plugin, in table order."""
    return _discover()


def names() -> list[str]:
    """Every registered ``method.name``, in table order."""
    return [n for p in registry() for n in p.names]


def labels() -> dict[str, str]:
    """name -> the paper's label, in table order (aliases of older records included)."""
    out: dict[str, str] = {}
    for p in registry():
        for n, lab in p.labels.items():
            out.setdefault(n, lab)
        for n in p.names:
            out.setdefault(n, p.label(n))
    return out


def get(name: str) -> Method:
    """The plugin training ``method.name`` = ``name`` (or a label alias of older records)."""
    for p in registry():
        if name in p.names or name in p.labels:
            return p
    raise KeyError(f"no method named {name!r} is registered (distill/methods/*.py); known: {', '.join(names())}")


def find(name: str | None) -> Method | None:
    try:
        return get(name) if name else None
    except KeyError:
        return None


def lookup(m: DictConfig) -> Method:
    """The plugin of the method config ``m``: by ``m.name``, else by its ``recipe._target_``'s last part."""
    plugin = find(m.get("name"))
    if plugin is None:
        target = str(OmegaConf.select(m, "recipe._target_", default="") or "")
        plugin = find(target.rsplit(".", 1)[-1]) if target else None
    if plugin is None:
        raise ValueError(f"method.name={m.get('name')!r}: no such method is registered (one module per method in "
                         f"distill/methods/ defines METHOD); known: {', '.join(names())}; pick one with method=<name>")
    return plugin


def method_nodes(m: DictConfig, prefix: str = "method"):
    """``(path, node, plugin)`` of the method config and of every nested one its plugin declares."""
    plugin = lookup(m)
    yield prefix, m, plugin
    for key, sub in plugin.nested(m).items():
        yield from method_nodes(sub, f"{prefix}.{key}")


def check(m: DictConfig, cfg: DictConfig, prefix: str = "method") -> list[str]:
    """Every problem of a method config (and its nested ones): each declared hyperparameter against
    its range, then the method's own relations."""
    problems = []
    try:
        nodes = list(method_nodes(m, prefix))
    except ValueError as e:
        return [str(e)]
    for path, node, plugin in nodes:
        for key, h in plugin.hparams(node.get("name")).items():
            if key not in node:
                continue
            v = node.get(key)
            if not h.ok(v):
                shown = repr(v) if isinstance(v, str) else OmegaConf.to_yaml(v).strip() if OmegaConf.is_config(v) else v
                problems.append(f"{path}.{key}={shown}: {h.range_text()}; set {path}.{key}="
                                f"{_suggest(h)}")
        problems += plugin.check(node, path, cfg)
    return problems


# ----------------------------------------------------------------------------- teacher-signal ablations
TEACHER_SIGNAL = ("teacher", "none", "flipped")
TEACHER_SIGN = {"teacher": 1, "none": 0, "flipped": -1}


def teacher_signal(choices: tuple[str, ...] = TEACHER_SIGNAL, what: str = ""):
    """The ``teacher_signal`` field of a distillation method's config: ``teacher`` (the method),
    ``none`` (the teacher's term removed: what the student learns without the teacher) or
    ``flipped`` (the teacher's signal with its sign reversed); methods may add their own (PAD:
    ``shuffled``). The ablations exist to measure what the teacher contributes
    (``experiment=teacher_ablation``); only ``teacher`` is the method of the paper."""
    return hp("teacher", "signal", "teacher signal", unit="ablation", kind="choice", choices=choices,
              why=what or "teacher: the method; none: the teacher's term removed; flipped: its sign reversed")


def _suggest(h: Hparam) -> str:
    v = h.suggest
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def teacher_data(cfg: DictConfig) -> dict:
    """The extra teacher data the configured method asks for (``Method.teacher_data``)."""
    if "method" not in cfg or not isinstance(cfg.method, DictConfig):
        return {}
    return lookup(cfg.method).teacher_data(cfg.method, cfg)


# ----------------------------------------------------------------------------- helpers for recipes
def attach_cache_rows(seq: dict, rows: dict) -> dict:
    """A sequence with its teacher-cache rows under the names the modules read (``t_ids``,
    ``t_logps``, ``t_rest``, and ``t_ref_logps`` when the cache holds a reference)."""
    out = {**seq, "t_ids": rows["ids"], "t_logps": rows["logps"], "t_rest": rows["rest"]}
    if "ref_logps" in rows:
        out["t_ref_logps"] = rows["ref_logps"]
    return out


def load_student(pipe, start, method: str, same_vocabulary: bool = False):
    """The model (and tokenizer) at ``start`` (an artifact holding ``model/``), in training mode; with
    ``same_vocabulary`` the teacher's tokenizer must equal the student's (token-level methods), else
    the run stops naming both models."""
    from distill.cache import check_same_vocabulary
    from distill.models import load_pretrained

    model, tok = load_pretrained(start.path / "model", pipe.cfg.world.dtype)
    if same_vocabulary:
        family = pipe.cfg.model.family
        check_same_vocabulary(pipe.tokenizer("teacher"), tok, f"the {family} teacher", f"the {family} student", method)
    model.train()
    return model, tok


def stage_with(stage_cfg, **extra) -> DictConfig:
    """``stage_cfg`` with more keys (DPO's ``beta`` for :meth:`Pipeline.train_dpo`)."""
    return OmegaConf.create({**OmegaConf.to_container(stage_cfg), **extra})
