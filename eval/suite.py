"""The benchmarks end to end: question sets, answers, judging, scores, files and logs.

For each model and each benchmark named in ``eval.benchmarks`` (a registered plugin,
:mod:`eval.benchmarks.plugins`; :func:`eval.benchmarks.base.registry` lists them), the suite runs
the benchmark's steps (``load``, ``generate``, ``judge``, ``score``):

1. **Question set.** ``world=toy``: built from the toy task (:mod:`eval.benchmarks.toy`), in the
   benchmark's own file layout, as a ``bench_data`` artifact (AlpacaEval's reference outputs and
   Arena-Hard's baseline answers come from the reference model ``eval.toy.reference``).
   ``world=full``: the benchmark's own files in ``eval.<benchmark>.data_dir``, downloaded from the
   benchmark's home when missing (:mod:`eval.benchmarks.sources`).
2. **Answers**, generated once per (model, question set, generation settings) as a ``bench_answers``
   artifact in the benchmark's own format (:mod:`eval.generate`). A rerun reuses them, so it sends
   the judge the very same prompts.
3. **Judging** with the configured judge (``conf/judge/``); an HTTP judge's replies are cached on
   disk under ``${paths.root_dir}/judge_cache`` as they arrive, so a killed evaluation, rerun, asks
   the judge nothing twice.
4. **Scores** by the benchmark modules (the authors' procedures), written with the judgments into
   ``<out_dir>/<model>/<benchmark>/``, returned as flat numbers for the results JSON and W&B
   (``eval/<benchmark>/<name>``) and per-question rows for a ``wandb.Table``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig

from eval import generate as G
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import base as B
from eval.benchmarks.base import BenchmarkResult, Target, flat_scores, plain, slug  # noqa: F401 - the suite's types
from eval.tables import print_benchmark_table, print_table  # noqa: F401 - the tables of the suite's results

log = logging.getLogger(__name__)


def headline(scores: dict, bench: str) -> tuple[str, float] | tuple[None, None]:
    """``(key, value)`` of ``bench``'s headline score among ``scores`` (flat keys)."""
    return B.get(bench).headline_of(scores)


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_config(cfg) -> None:
    """Fail before anything is trained or generated when ``eval`` / ``judge`` cannot work together
    (the problems shared by the selected benchmarks, then each benchmark's own)."""
    ec = cfg.eval
    problems = []
    names = list(ec.get("benchmarks") or [])
    choices = B.selectable()
    bad = [b for b in names if b not in choices]
    if bad:
        problems.append(f"eval.benchmarks: unknown {bad}; choose from {choices}")
    selected = [B.get(b) for b in names if b in choices]
    toy = cfg.world.source == "toy"
    stages = ("sft_teacher", "dpo_teacher", "sft_student")
    if toy and any(getattr(b, "uses_reference", False) for b in selected) and ec.toy.reference not in stages:
        problems.append(f"eval.toy.reference={ec.toy.reference}: choose one of {list(stages)}")
    bad = [r for r in (ec.get("benchmark_references") or []) if r not in stages]
    if bad:
        problems.append(f"eval.benchmark_references: unknown {bad}; choose from {list(stages)}")
    if any(b.judged for b in selected):
        runtime = list((cfg.get("judge") or {}).get("runtime") or [])
        if "task" in runtime and not toy:
            problems.append(f"judge={cfg.judge.get('name')} answers from the toy task and needs world=toy; "
                            "with world=full choose judge=openai, judge=vllm or judge=reward_model")
    for b in selected:
        problems += b.config_problems(cfg)
    if ec.get("backend", "hf") not in ("hf", "vllm"):
        problems.append(f"eval.backend={ec.backend}: choose hf or vllm")
    if problems:
        raise ValueError("evaluation config:\n  - " + "\n  - ".join(problems))


def benchmark_problems(cfg) -> list[str]:
    """What a full-world evaluation would miss (each selected benchmark's files: its question set,
    an Open LLM preset's local task folder), found before anything is trained or loaded; one line
    each, with its fix."""
    return [p for b in (cfg.eval.get("benchmarks") or []) for p in B.get(b).file_problems(cfg)]


# ---- judges ------------------------------------------------------------------------------------
def make_judge(judge_cfg, *, task=None):
    """Instantiate ``conf/judge/<name>.yaml``. ``runtime`` lists what the evaluation supplies:
    ``task`` (the toy task, for the oracle) and ``forms`` (the judge prompts a scoring judge reads)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from eval.judges.base import JudgeError
    from eval.judges.verdicts import JudgePrompts

    spec = dict(plain(judge_cfg))
    name = spec.pop("name", None)
    runtime = spec.pop("runtime", None) or []
    supplied = {"task": task, "forms": JudgePrompts()}
    unknown = [k for k in runtime if k not in supplied]
    if unknown:
        raise ValueError(f"judge {name!r}: unknown runtime argument(s) {unknown}; known: {sorted(supplied)}")
    if "task" in runtime and task is None:
        raise ValueError(f"judge {name!r} needs the toy task (world=toy); choose another judge for world=full")
    try:
        return instantiate(spec, **{k: supplied[k] for k in runtime})
    except InstantiationException as e:
        if isinstance(e.__cause__, JudgeError):  # e.g. the API key's variable is not set: say just that
            raise e.__cause__ from None
        raise


def judge_stats(judge) -> dict:
    stats = getattr(judge, "stats", None)
    if stats is not None and hasattr(stats, "to_dict"):
        return stats.to_dict()
    return {"calls": getattr(judge, "calls", None), "cache_hits": getattr(judge, "cache_hits", None)}


# ---- the suite ---------------------------------------------------------------------------------
class Suite:
    """Runs ``eval.benchmarks`` for one or more models; one judge serves them all.

    Args:
        cfg: the composed config (``eval``, ``judge``, ``world``, ``paths``).
        store: the artifact store (question sets, answers).
        out_dir: where judgments and score files go (``<out_dir>/<model>/<benchmark>/``).
        task: the toy task (world=toy).
        reference: returns the toy reference model's :class:`Target` (world=toy; AlpacaEval's
            reference outputs and Arena-Hard's baseline).
        judge: a ready judge (tests); otherwise built from ``cfg.judge`` when first needed.
        pipe: the pipeline whose generations the toy oracle scores (``python run.py``).
    """

    def __init__(self, cfg: DictConfig, store, out_dir: str | os.PathLike, *, task=None,
                 reference: Optional[Callable[[], Target]] = None, judge=None, pipe=None):
        self.cfg, self.ec, self.store, self.pipe = cfg, cfg.eval, store, pipe
        self.out_dir = Path(out_dir)
        self.toy = cfg.world.source == "toy"
        self.task, self.reference = task, reference
        self._reference: Optional[Target] = None
        self._judge, self._own_judge = judge, judge is None
        self._backends: dict[str, Any] = {}
        self._benchmarks: dict[str, B.Benchmark] = {}
        self.device = resolve_device(self.ec.get("device", "cpu"))
        if self.toy and task is None:
            raise ValueError("world=toy: the suite needs the toy task")

    # ---- plumbing
    @property
    def judge(self):
        if self._judge is None:
            self._judge = make_judge(self.cfg.judge, task=self.task)
        return self._judge

    def judge_stats(self) -> dict:
        """The judge's request, cache and cost counts ({} when no benchmark needed a judge)."""
        return judge_stats(self._judge) if self._judge is not None else {}

    def close(self) -> None:
        self._backends.clear()
        if self._own_judge and self._judge is not None and hasattr(self._judge, "close"):
            self._judge.close()
        self._judge = None

    def __enter__(self) -> "Suite":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reference_target(self) -> Target:
        """The toy reference model (built on first use, then kept)."""
        if self._reference is None:
            if self.reference is None:
                raise ValueError("world=toy: AlpacaEval's and Arena-Hard's toy sets need a reference model")
            self._reference = self.reference()
        return self._reference

    def forms(self):
        return getattr(self.judge, "forms", None)

    def benchmarks(self) -> list[str]:
        names = list(self.ec.get("benchmarks") or [])
        bad = [b for b in names if b not in B.selectable()]
        if bad:
            raise ValueError(f"unknown benchmark(s) {bad}; choose from {B.selectable()}")
        return names

    def benchmark(self, name: str) -> B.Benchmark:
        """The registered benchmark ``name``, bound to this suite (one instance for the suite's life)."""
        if name not in self._benchmarks:
            self._benchmarks[name] = B.get(name)(self)
        return self._benchmarks[name]

    def need_pipe(self):
        if self.pipe is None:
            raise ValueError("the toy oracle scores the pipeline's generations: the suite needs the pipeline")
        return self.pipe

    def max_new_tokens(self, bench: str) -> int:
        return int(self.ec.toy.max_new_tokens if self.toy else self.ec[bench].max_new_tokens)

    def backend(self, target: Target):
        """The generation backend of ``target`` (one per model: vLLM loads the weights once)."""
        if target.key not in self._backends:
            kind = self.ec.get("backend", "hf")
            if kind == "vllm":
                backend = G.make_backend("vllm", path=target.path or "", seed=self.ec.seed)
            else:
                model, tok = target.model_and_tokenizer(self.device)
                backend = G.make_backend("hf", model=model, tokenizer=tok, batch_size=self.ec.bench_batch_size,
                                         seed=self.ec.seed)
            self._backends[target.key] = backend
        return self._backends[target.key]

    def _task_params(self) -> dict:
        from dataclasses import asdict

        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.task.cfg).items()}

    def toy_data(self, bench: str, build: Callable[[Path], None], **extra) -> Any:
        spec = {"benchmark": bench, "task": self._task_params(), "n": int(self.ec[bench].n_toy),
                "seed": int(self.ec.toy.seed), **extra}
        return self.store.get_or_build("bench_data", spec, lambda out, work: build(out))

    def reference_answerer(self, ref: Target) -> Callable[[list[list[dict]]], list[str]]:
        def answer(convs):
            model, tok = ref.model_and_tokenizer(self.device)
            backend = G.HFBackend(model, tok, batch_size=self.ec.bench_batch_size, seed=self.ec.seed)
            return backend.chat(convs, temperature=0.0, max_new_tokens=self.ec.toy.max_new_tokens,
                                desc=f"reference answers ({ref.name})")
        return answer

    def answers(self, target: Target, bench: str, data_key: str, settings: dict, build: Callable[[Path], None],
                expected: Sequence = ()):
        """``target``'s answers to ``bench`` as a ``bench_answers`` artifact (built by ``build``), or its
        outputs file laid out as that benchmark's answers (checked against ``expected``)."""
        if target.outputs is not None:  # a model outputs file enters here, in place of generated answers
            return target.outputs.place(bench, expected, self.out(target, bench) / "given_answers")
        spec = {"benchmark": bench, "model": target.key, "model_id": target.name, "data": data_key,
                "generation": settings, "backend": self.ec.get("backend", "hf")}
        return self.store.get_or_build("bench_answers", spec, lambda out, work: build(out))

    def out(self, target: Target, bench: str) -> Path:
        d = self.out_dir / slug(target.name) / bench
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---- entry point
    def run(self, target: Target, benchmarks: Optional[Sequence[str]] = None) -> dict[str, BenchmarkResult]:
        out = {}
        for bench in benchmarks if benchmarks is not None else self.benchmarks():
            log.info("benchmark %s: %s", bench, target.name)
            out[bench] = self.benchmark(bench).run(target)
        return out

    def run_models(self, targets: Sequence[Target], benchmarks: Optional[Sequence[str]] = None
                   ) -> dict[str, dict[str, BenchmarkResult]]:
        """:meth:`run` for several models (e.g. several checkpoints), then each benchmark's pooling
        over all of them (Arena-Hard's official CI) unless ``eval.arena_hard.ci=per_model``."""
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"two models share a name in {names}; their answers and judgments would mix")
        out = {t.name: self.run(t, benchmarks) for t in targets}
        if self.ec.arena_hard.get("ci", "auto") == "auto":
            pool(out)
        return out


def pool(results: dict[str, dict[str, BenchmarkResult]]) -> dict[str, dict[str, BenchmarkResult]]:
    """Each benchmark's :meth:`~eval.benchmarks.base.Benchmark.pool` over the models evaluated
    together (label -> ``Suite.run`` results)."""
    for name, cls in B.registry().items():
        cls.pool({who: r[name] for who, r in results.items() if name in r})
    return results


def details_of(results: dict[str, BenchmarkResult]) -> dict:
    """Each benchmark's details (files, judge, variants); the oracle's, which has none, left out."""
    return {b: r.details for b, r in results.items() if not B.get(b).always}


def log_tables(logger, results: dict[str, BenchmarkResult], prefix: str = "") -> None:
    """Per-question judgments as ``wandb.Table``s (only with a W&B logger)."""
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return
    if not isinstance(logger, WandbLogger):
        return
    for bench, r in results.items():
        if not r.table:
            continue
        columns = list(dict.fromkeys(k for row in r.table for k in row))
        data = [[_cell(row.get(c)) for c in columns] for row in r.table]
        logger.log_table(key=f"{prefix}eval/{bench}/judgments", columns=columns, data=data)


def _cell(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, default=str)


# ---- targets -----------------------------------------------------------------------------------
def artifact_target(name: str, artifact, dtype: str = "float32") -> Target:
    """A model saved by a pipeline stage (``<artifact>/model``)."""
    from distill.models import load_pretrained

    return Target(name=name, key=f"{artifact.stage}/{artifact.key}", path=str(artifact.path / "model"),
                  load=lambda: load_pretrained(artifact.path / "model", dtype), artifact=artifact)


FAMILIES = {"gemma2": "gemma", "gemma": "gemma", "llama": "llama", "qwen2": "qwen", "mistral": "danube"}


def checkpoint_target(checkpoint: str, dtype: str = "float32") -> tuple[Target, dict]:
    """A checkpoint folder (e.g. ``artifacts/distill/<key>/model``) or a hub id, with what is known
    about it (``family``: the config's architecture mapped to our family names)."""
    from distill.models import load_pretrained

    p = Path(checkpoint).expanduser()
    info: dict = {"checkpoint": str(checkpoint)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        h = hashlib.sha256(str(p.resolve()).encode())
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
        key = f"checkpoint/{h.hexdigest()[:16]}"
        name = p.name if p.name != "model" else p.parent.name
        manifest = p.parent / "manifest.json"
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            method = (m.get("spec", {}).get("method") or {}).get("name")
            name = f"{method or m.get('stage', 'model')}-{str(m.get('key', ''))[:8]}"
        config = p / "config.json"
        if config.is_file():
            info["family"] = FAMILIES.get(json.loads(config.read_text()).get("model_type"))
    elif p.exists():
        raise FileNotFoundError(f"{p} is not a checkpoint folder")
    else:
        if "/" not in str(checkpoint) or str(checkpoint).startswith((".", "/", "~")):
            raise FileNotFoundError(f"no checkpoint folder at {p}, and {checkpoint!r} is not a hub id (owner/name)")
        key, name = f"hub/{checkpoint}", str(checkpoint).split("/")[-1]
    target = Target(name=slug(name), key=key, path=str(checkpoint), load=lambda: load_pretrained(str(checkpoint), dtype))
    return target, info


class OutputsMismatch(ValueError):
    """A model outputs file that does not answer the benchmark's question set."""


@dataclass
class ModelOutputs:
    """A model's answers given as a file instead of a checkpoint (``python -m eval model_outputs=...``).

    ``kind`` is ``alpaca_eval`` (AlpacaEval's ``model_outputs.json``: a JSON list of ``{instruction,
    output, generator, ...}``) or ``fastchat`` (a ``.jsonl`` of ``{question_id, model_id, choices:
    [{turns: [...]}]}``, the answer format of Arena-Hard v0.1 and MT-Bench); ``keys`` are the rows'
    instructions or question ids in file order.
    """

    path: Path
    kind: str
    name: str
    keys: list

    def benchmarks(self) -> tuple[str, ...]:
        return ("alpaca_eval2",) if self.kind == "alpaca_eval" else ("arena_hard", "mt_bench")

    def mismatch(self, expected: Sequence) -> Optional[str]:
        """None when the rows answer exactly the questions in ``expected``; else what is wrong, by line."""
        want = set(expected)
        where = "entry {} (0-based) of the JSON list" if self.kind == "alpaca_eval" else "line {}"
        what = "instruction" if self.kind == "alpaca_eval" else "question_id"
        seen = set()
        for i, k in enumerate(self.keys):
            at = where.format(i if self.kind == "alpaca_eval" else i + 1)
            if k not in want:
                return f"{at}: {what} {str(k)[:80]!r} is not in the question set"
            if k in seen:
                return f"{at}: {what} {str(k)[:80]!r} is answered twice"
            seen.add(k)
        missing = [k for k in expected if k not in seen]
        if missing:
            return f"{len(missing)} of the {len(want)} questions have no answer, e.g. {what} {str(missing[0])[:80]!r}"
        return None

    def place(self, bench: str, expected: Sequence, folder: Path):
        """Check the rows against the benchmark's questions, then lay the file out as that benchmark's
        answers (``model_outputs.json`` or ``model_answer/<name>.jsonl``) in ``folder``; returns an
        object with ``.path`` (what :meth:`Suite._answers` returns for generated answers)."""
        import shutil
        from types import SimpleNamespace

        if bench not in self.benchmarks():
            raise OutputsMismatch(f"{self.path}: a {self.kind} outputs file cannot be scored by {bench}")
        problem = self.mismatch(expected)
        if problem:
            raise OutputsMismatch(
                f"{self.path} does not answer the configured {bench} question set: {problem}. Fix: give the "
                f"outputs of this very question set (eval.{bench}.data_dir, or the toy set in world=toy), "
                "or name the benchmark with model_outputs_benchmark=...")
        dest = (folder / "model_outputs.json" if bench == "alpaca_eval2"
                else folder / "model_answer" / f"{self.name}.jsonl")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, dest)
        return SimpleNamespace(path=folder)


def read_model_outputs_file(path: str | os.PathLike) -> ModelOutputs:
    """Read a model outputs file (AlpacaEval ``model_outputs.json`` or a FastChat ``.jsonl``)."""
    from eval.benchmarks import DataFormatError, read_jsonl

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"model_outputs={path}: no such file (an AlpacaEval model_outputs.json or a "
                                "FastChat answer .jsonl)")
    if p.suffix == ".jsonl":
        rows = read_jsonl(p)
        for i, r in enumerate(rows):
            try:
                r["question_id"], r["choices"][0]["turns"][0]
            except (KeyError, IndexError, TypeError):
                raise DataFormatError(f"{p}, line {i + 1}: expected question_id and choices[0].turns (a FastChat "
                                      "answer row, as Arena-Hard v0.1 and MT-Bench write them)") from None
        if not rows:
            raise DataFormatError(f"{p}: no answers")
        name = rows[0].get("model_id") or p.stem
        return ModelOutputs(p, "fastchat", slug(name), [r["question_id"] for r in rows])
    rows = ae2.read_model_outputs(p)
    if not rows:
        raise ae2.DataFormatError(f"{p}: no outputs")
    name = rows[0].get("generator") or (p.parent.name if p.name == "model_outputs.json" else p.stem)
    return ModelOutputs(p, "alpaca_eval", slug(name), [r["instruction"] for r in rows])


def outputs_target(outputs: ModelOutputs) -> Target:
    """A :class:`Target` whose answers are a file; asking it for a model is an error."""
    h = hashlib.sha256(outputs.path.read_bytes()).hexdigest()[:16]

    def load():
        raise ValueError(f"model_outputs={outputs.path} gives answers, not a model; this benchmark needs a "
                         "checkpoint (model=...)")

    return Target(name=outputs.name, key=f"outputs/{h}", load=load, path=None, outputs=outputs)


# ---- the pipeline's end of run -----------------------------------------------------------------
@dataclass
class RunBenchmarks:
    """The evaluation of one ``python run.py`` job: the distilled student's results and those of the
    reference models (keyed by their table labels): world=toy, the oracle's for every reference
    model; the benchmarks' for those whose stage ``eval.benchmark_references`` names."""

    student: dict[str, BenchmarkResult]
    references: dict[str, dict[str, BenchmarkResult]]
    judge: dict = field(default_factory=dict)   # the judge's request, cache and cost counts
    stages: dict = field(default_factory=dict)  # reference label -> its stage (sft_teacher, ...), for metric keys

    def scores(self) -> dict[str, float]:
        return flat_scores(self.student)

    def reference_scores(self) -> dict[str, dict[str, float]]:
        return {who: flat_scores(r) for who, r in self.references.items()}

    def _benchmarked(self, results: dict[str, BenchmarkResult]) -> bool:
        return any(not B.get(b).always for b in results)

    def details(self) -> Optional[dict]:
        """The benchmarks' details of the student and the reference models (None when none ran)."""
        if not self._benchmarked(self.student):
            return None
        return {"student": details_of(self.student),
                **{who: details_of(r) for who, r in self.references.items() if self._benchmarked(r)}}

    def print(self, record: dict) -> None:
        """The oracle's table (world=toy) and the benchmarks' table of this run's ``record``."""
        if any(B.get(b).always for b in self.student):
            print_table([record])
        if self._benchmarked(self.student):
            rows = [(who, flat_scores(r)) for who, r in self.references.items() if self._benchmarked(r)]
            rows.append((f"student · {record['method']}", self.scores()))
            print_benchmark_table(rows, title="Benchmarks (toy variants)" if any(
                r.details.get("toy") for r in self.student.values()) else "Benchmarks")

    def log(self, logger) -> None:
        if logger is None:
            return
        log_tables(logger, self.student)
        for who, r in self.references.items():  # ASCII keys: reference/<stage>/eval/...
            log_tables(logger, r, prefix=f"reference/{self.stages.get(who, who)}/")


def run_pipeline_benchmarks(cfg, pipe, store, student, references: dict, name: str) -> RunBenchmarks:
    """Evaluate the distilled ``student`` artifact and the ``references`` (label -> artifact):
    world=toy, the oracle on all of them; the benchmarks of ``eval.benchmarks`` on the student and on
    the references whose stage is listed in ``eval.benchmark_references``."""
    ec = cfg.eval
    dtype = cfg.world.dtype
    toy = cfg.world.source == "toy"
    stages = {"sft_teacher": lambda: pipe.sft("teacher"), "dpo_teacher": pipe.dpo_teacher,
              "sft_student": lambda: pipe.sft("student")}
    selected = list(ec.get("benchmarks") or [])
    ref_stage = ec.toy.reference if toy and selected else None  # the toy benchmarks' reference model
    if ref_stage is not None and ref_stage not in stages:
        raise ValueError(f"eval.toy.reference must be one of {sorted(stages)}, got {ref_stage!r}")
    family = cfg.model.family

    def toy_reference() -> Target:
        return artifact_target(f"{ref_stage}-{family}", stages[ref_stage](), dtype)

    wanted = list(ec.get("benchmark_references") or [])
    unknown = [w for w in wanted if w not in stages]
    if unknown:
        raise ValueError(f"eval.benchmark_references: unknown {unknown}; choose from {sorted(stages)}")
    always = [n for n, c in B.registry().items() if c.always] if toy else []
    out_dir = Path(cfg.paths.output_dir) / "eval"
    task = pipe.task() if toy else None
    with Suite(cfg, store, out_dir, task=task, reference=toy_reference if ref_stage else None, pipe=pipe) as suite:
        refs = {}
        for who, art in references.items():
            benches = always + (selected if art.stage in wanted else [])
            if benches:
                refs[who] = suite.run(artifact_target(f"{art.stage}-{family}", art, dtype), benches)
        mine = suite.run(artifact_target(name, student, dtype), always + selected)
        stats = suite.judge_stats()
    if stats:
        log.info("judge: %s", stats)
    return RunBenchmarks(mine, refs, stats or {}, {who: art.stage for who, art in references.items()})


class PipelineEvaluation:
    """The evaluation step of ``python run.py`` (``eval.step`` in ``conf/eval/``): ``distill.pipeline``
    instantiates it from the config and never imports ``eval`` itself."""

    def check(self, cfg) -> None:
        """Fail before training when ``eval`` / ``judge`` cannot work together."""
        if cfg.eval.get("benchmarks"):
            check_config(cfg)

    def preflight(self, cfg) -> list[str]:
        """world=full: what the benchmarks would miss (see :func:`benchmark_problems`)."""
        return benchmark_problems(cfg)

    def __call__(self, cfg, pipe, store, student, references: dict, name: str) -> RunBenchmarks:
        """The oracle (world=toy) and the benchmarks of ``eval.benchmarks`` on ``student`` and the
        reference models."""
        return run_pipeline_benchmarks(cfg, pipe, store, student, references, name)
