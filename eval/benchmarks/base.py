"""What a benchmark is to the suite, and the registry that finds them.

A benchmark is a subclass of :class:`Benchmark` in a module of :mod:`eval.benchmarks.plugins`; the
registry imports every module there, so adding a file adds a benchmark. One protocol:

- ``load()``: the question set (and whatever judging needs: references, judge prompts, a key of it);
- ``generate(target, items)``: the model's answers, an artifact reused by every rerun;
- ``judge(target, items, answers)``: the judgments (or, without a judge, the evaluation itself);
- ``score(target, items, answers, judgments)``: a :class:`BenchmarkResult`, its files written;
- ``headline``, ``columns(rows)`` and ``tables(rows)``: what the tables show of its scores;
- ``config_problems(cfg)`` and ``file_problems(cfg)``: what is wrong before anything runs.

The list of benchmarks exists only here (:func:`registry`).
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import math
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence

from distill.files import plain  # noqa: F401 - the benchmarks' config nodes as plain data
from eval.benchmarks.sources import MissingBenchmarkFile, ensure_files

log = logging.getLogger(__name__)


# ---- what the suite hands a benchmark, and what it returns ----------------------------------------
@dataclass
class Target:
    """A model to evaluate: its name in answer files, a key identifying its weights, and a loader."""

    name: str
    key: str
    load: Callable[[], tuple[Any, Any]]
    path: Optional[str] = None   # checkpoint folder or hub id (the vLLM backend loads it itself)
    outputs: Optional[Any] = None  # answers given as a file (eval.suite.ModelOutputs): judged as they are
    artifact: Optional[Any] = None  # the pipeline artifact it was saved as (the toy oracle reads its generations)
    _loaded: Optional[tuple[Any, Any]] = field(default=None, repr=False)

    def model_and_tokenizer(self, device: str = "cpu") -> tuple[Any, Any]:
        if self._loaded is None:
            model, tok = self.load()
            if device != "cpu":
                model = model.to(device)
            self._loaded = (model, tok)
        return self._loaded


@dataclass
class BenchmarkResult:
    name: str
    scores: dict            # numbers, keys without the benchmark's prefix ("eval/<benchmark>/")
    details: dict           # everything else: files, judge, variants, per-category
    table: list[dict]       # one row per question (or per document)


@dataclass
class Column:
    """A table column: its header and the cell of one row (a benchmark's: of the row's flat scores,
    ``eval/<benchmark>/<name>``)."""

    header: str
    cell: Callable[[dict], str]
    justify: str = "right"
    no_wrap: bool = False


# ---- small shared helpers ----------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


def files_fingerprint(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def num(v) -> Optional[float]:
    """A plain int or float (numpy scalars unwrapped; whole-number floats of counts stay floats)."""
    if isinstance(v, bool) or v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def clean(scores: dict) -> dict:
    """Numbers only (None and strings dropped; NaN kept out too, with a log line)."""
    out = {}
    for k, v in scores.items():
        x = num(v)
        if x is None:
            continue
        if math.isnan(x):
            log.warning("score %s is NaN; not recorded", k)
            continue
        out[k] = x
    return out


def fmt(v: Optional[float], spec: str) -> str:
    return "—" if v is None else format(v, spec)


def score_cell(key: str, spec: str, more: Callable[[dict], str]) -> Callable[[dict], str]:
    """A cell showing the score ``key`` (``spec``) then ``more`` of the row (its CI, its turns), or
    "—" when the row has no such score."""
    return lambda s: "—" if key not in s else f"{format(s[key], spec)} {more(s)}"


# ---- the protocol ----------------------------------------------------------------------------------
class Benchmark:
    """One benchmark run by :class:`eval.suite.Suite` (``suite``: the config, the artifact store,
    the judge, the generation backends, the output folders).

    Class attributes: ``name`` (its key in ``eval.benchmarks`` and in ``eval.<name>``), ``order``
    (its place in tables and lists), ``headline`` (its headline scores, the first present wins),
    ``judged`` (it needs a judge), ``prefix`` (of its flat score keys; default ``eval/<name>/``),
    ``always`` (run on every toy-world pipeline run without being listed, the oracle)."""

    name: ClassVar[str]
    order: ClassVar[int] = 100
    headline: ClassVar[tuple[str, ...]] = ()
    judged: ClassVar[bool] = False
    always: ClassVar[bool] = False
    prefix: ClassVar[str] = ""
    files: ClassVar[bool] = False  # world=full: reads its own files (eval.<name>.files in eval.<name>.data_dir)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "name" in cls.__dict__:
            if not cls.prefix:
                cls.prefix = f"eval/{cls.name}/"
            _REGISTRY[cls.name] = cls

    def __init__(self, suite):
        self.suite = suite

    # -- checks (class level: no suite yet)
    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        """What is wrong with ``eval.<name>`` (and the judge) for this benchmark, one line each."""
        return []

    @classmethod
    def file_problems(cls, cfg) -> list[str]:
        """world=full: which of its files are missing (downloaded now when missing and allowed),
        before anything is trained or loaded."""
        if not cls.files:
            return []
        bc = cfg.eval[cls.name]
        try:
            ensure_files(bc.data_dir, plain(bc.files), what=cls.name, download=bool(cfg.eval.download))
        except MissingBenchmarkFile as e:
            return [f"{e} (or eval.download=true where the addresses are reachable)"]
        return []

    # -- the steps
    def load(self):
        raise NotImplementedError

    def generate(self, target: Target, items):
        raise NotImplementedError

    def judge(self, target: Target, items, answers):
        raise NotImplementedError

    def score(self, target: Target, items, answers, judgments) -> BenchmarkResult:
        raise NotImplementedError

    def run(self, target: Target) -> BenchmarkResult:
        items = self.load()
        answers = self.generate(target, items)
        return self.score(target, items, answers, self.judge(target, items, answers))

    def expected(self, items) -> list:
        """The keys a model outputs file must answer (``model_outputs=``); [] when it takes none."""
        return []

    @classmethod
    def pool(cls, results: dict[str, BenchmarkResult]) -> None:
        """Several models evaluated together (label -> result): update their scores in place."""

    # -- tables
    @classmethod
    def flat(cls, scores: dict) -> dict[str, float]:
        return {f"{cls.prefix}{k}": v for k, v in scores.items()}

    @classmethod
    def headline_of(cls, scores: dict) -> tuple[str, float] | tuple[None, None]:
        for name in cls.headline:
            if f"{cls.prefix}{name}" in scores:
                return f"{cls.prefix}{name}", scores[f"{cls.prefix}{name}"]
        return None, None

    @classmethod
    def present(cls, rows: Sequence[tuple[str, dict]]) -> bool:
        return any(k.startswith(cls.prefix) for _, s in rows for k in s)

    @classmethod
    def columns(cls, rows: Sequence[tuple[str, dict]]) -> list[Column]:
        """The columns of the benchmark table for these rows (``(label, flat scores)``)."""
        return []

    @classmethod
    def tables(cls, rows: Sequence[tuple[str, dict]]) -> list[tuple[str, list[Column]]]:
        """Tables of their own after the benchmark table (title, columns), e.g. MT-Bench per category."""
        return []


# ---- the registry ----------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Benchmark]] = {}
_DISCOVERED = False


def registry() -> dict[str, type[Benchmark]]:
    """Every benchmark (name -> class), in table order: the modules of :mod:`eval.benchmarks.plugins`
    are imported on the first call."""
    global _DISCOVERED
    if not _DISCOVERED:
        plugins = importlib.import_module("eval.benchmarks.plugins")  # discovery, not a dependency
        for info in pkgutil.iter_modules(plugins.__path__):
            importlib.import_module(f"{plugins.__name__}.{info.name}")
        _DISCOVERED = True
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def selectable() -> list[str]:
    """The names ``eval.benchmarks`` may list (the oracle runs without being listed)."""
    return [n for n, c in registry().items() if not c.always]


def get(name: str) -> type[Benchmark]:
    reg = registry()
    if name not in reg:
        raise ValueError(f"unknown benchmark {name!r}; choose from {selectable()}")
    return reg[name]


def flat_scores(results: dict[str, BenchmarkResult]) -> dict[str, float]:
    """``<prefix><name>`` -> value (``eval/<benchmark>/<name>``; the oracle's ``toy/<name>``): the keys
    of the results JSON and the W&B summary."""
    return {k: v for b, r in results.items() for k, v in get(b).flat(r.scores).items()}
