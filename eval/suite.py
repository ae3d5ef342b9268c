"""The benchmarks end to end: question sets, answers, judging, scores, files and logs.

For each model and each benchmark named in ``eval.benchmarks``:

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
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from eval import generate as G
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt
from eval.benchmarks import open_llm as ol
from eval.benchmarks import toy as toy_sets
from eval.benchmarks import write_json, write_jsonl
from eval.benchmarks.sources import ensure_files
from eval.judges import coverage

log = logging.getLogger(__name__)

BENCHMARKS = ("alpaca_eval2", "arena_hard", "mt_bench", "open_llm")
JUDGED = ("alpaca_eval2", "arena_hard", "mt_bench")
# each benchmark's headline scores, the first present wins: AlpacaEval 2's LC exists only with its GLM
# tables (length_controlled_v1), the Open LLM average is the toy preset's or the leaderboard's
HEADLINE = {"alpaca_eval2": ("lc_win_rate", "win_rate"), "arena_hard": ("score",), "mt_bench": ("score",),
            "open_llm": ("average", "v1_average", "v2_average")}


def headline(scores: dict, bench: str) -> tuple[str, float] | tuple[None, None]:
    """``(key, value)`` of ``bench``'s headline score among ``scores`` (``eval/<bench>/<name>``)."""
    for name in HEADLINE[bench]:
        key = f"eval/{bench}/{name}"
        if key in scores:
            return key, scores[key]
    return None, None


@dataclass
class Target:
    """A model to evaluate: its name in answer files, a key identifying its weights, and a loader."""

    name: str
    key: str
    load: Callable[[], tuple[Any, Any]]
    path: Optional[str] = None   # checkpoint folder or hub id (the vLLM backend loads it itself)
    outputs: Optional["ModelOutputs"] = None  # answers given as a file: no model, they are judged as they are
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
    scores: dict            # numbers, keys without the "eval/<benchmark>/" prefix
    details: dict           # everything else: files, judge, variants, per-category
    table: list[dict]       # one row per question (or per document)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


def _files_fingerprint(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _plain(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _num(v) -> Optional[float]:
    """A plain int or float (numpy scalars unwrapped; whole-number floats of counts stay floats)."""
    if isinstance(v, bool) or v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_config(cfg) -> None:
    """Fail before anything is trained or generated when ``eval`` / ``judge`` cannot work together."""
    ec = cfg.eval
    problems = []
    names = list(ec.get("benchmarks") or [])
    bad = [b for b in names if b not in BENCHMARKS]
    if bad:
        problems.append(f"eval.benchmarks: unknown {bad}; choose from {list(BENCHMARKS)}")
    toy = cfg.world.source == "toy"
    stages = ("sft_teacher", "dpo_teacher", "sft_student")
    if toy and {"alpaca_eval2", "arena_hard"} & set(names) and ec.toy.reference not in stages:
        problems.append(f"eval.toy.reference={ec.toy.reference}: choose one of {list(stages)}")
    bad = [r for r in (ec.get("benchmark_references") or []) if r not in stages]
    if bad:
        problems.append(f"eval.benchmark_references: unknown {bad}; choose from {list(stages)}")
    if set(names) & set(JUDGED):
        runtime = list((cfg.get("judge") or {}).get("runtime") or [])
        if "task" in runtime and not toy:
            problems.append(f"judge={cfg.judge.get('name')} answers from the toy task and needs world=toy; "
                            "with world=full choose judge=openai, judge=vllm or judge=reward_model")
    if "arena_hard" in names and ec.arena_hard.get("ci", "auto") not in ("auto", "per_model"):
        problems.append(f"eval.arena_hard.ci={ec.arena_hard.ci}: choose auto (pooled over the models evaluated "
                        "together) or per_model")
    if "alpaca_eval2" in names and ec.alpaca_eval2.annotation not in ("logprobs", "verdicts"):
        problems.append(f"eval.alpaca_eval2.annotation={ec.alpaca_eval2.annotation}: choose logprobs or verdicts")
    if "open_llm" in names:
        preset = ec.open_llm.preset
        if preset != "auto" and preset not in ec.open_llm.presets:
            problems.append(f"eval.open_llm.preset={preset}: choose auto or one of {sorted(ec.open_llm.presets)}")
        if preset == "toy" and not toy:
            problems.append("eval.open_llm.preset=toy needs world=toy")
    if ec.get("backend", "hf") not in ("hf", "vllm"):
        problems.append(f"eval.backend={ec.backend}: choose hf or vllm")
    if problems:
        raise ValueError("evaluation config:\n  - " + "\n  - ".join(problems))


# ---- judges ------------------------------------------------------------------------------------
def make_judge(judge_cfg, *, task=None):
    """Instantiate ``conf/judge/<name>.yaml``. ``runtime`` lists what the evaluation supplies:
    ``task`` (the toy task, for the oracle) and ``forms`` (the judge prompts a scoring judge reads)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from eval.judges.base import JudgeError
    from eval.judges.verdicts import JudgePrompts

    spec = dict(_plain(judge_cfg))
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
    """

    def __init__(self, cfg: DictConfig, store, out_dir: str | os.PathLike, *, task=None,
                 reference: Optional[Callable[[], Target]] = None, judge=None):
        self.cfg, self.ec, self.store = cfg, cfg.eval, store
        self.out_dir = Path(out_dir)
        self.toy = cfg.world.source == "toy"
        self.task, self.reference = task, reference
        self._reference: Optional[Target] = None
        self._judge, self._own_judge = judge, judge is None
        self._backends: dict[str, Any] = {}
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
        bad = [b for b in names if b not in BENCHMARKS]
        if bad:
            raise ValueError(f"unknown benchmark(s) {bad}; choose from {list(BENCHMARKS)}")
        return names

    def _token_counter(self) -> str:
        kind = self.ec.arena_hard.get("token_counter", "auto")
        return ("model" if self.toy else "tiktoken") if kind == "auto" else kind

    def _max_new_tokens(self, bench: str) -> int:
        return int(self.ec.toy.max_new_tokens if self.toy else self.ec[bench].max_new_tokens)

    def _backend(self, target: Target):
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

    def _toy_data(self, bench: str, build: Callable[[Path], None], **extra) -> Any:
        spec = {"benchmark": bench, "task": self._task_params(), "n": int(self.ec[bench].n_toy),
                "seed": int(self.ec.toy.seed), **extra}
        return self.store.get_or_build("bench_data", spec, lambda out, work: build(out))

    def _reference_answerer(self, ref: Target) -> Callable[[list[list[dict]]], list[str]]:
        def answer(convs):
            model, tok = ref.model_and_tokenizer(self.device)
            backend = G.HFBackend(model, tok, batch_size=self.ec.bench_batch_size, seed=self.ec.seed)
            return backend.chat(convs, temperature=0.0, max_new_tokens=self.ec.toy.max_new_tokens,
                                desc=f"reference answers ({ref.name})")
        return answer

    def _answers(self, target: Target, bench: str, data_key: str, settings: dict, build: Callable[[Path], None],
                 expected: Sequence = ()):
        if target.outputs is not None:  # a model outputs file enters here, in place of generated answers
            return target.outputs.place(bench, expected, self._out(target, bench) / "given_answers")
        spec = {"benchmark": bench, "model": target.key, "model_id": target.name, "data": data_key,
                "generation": settings, "backend": self.ec.get("backend", "hf")}
        return self.store.get_or_build("bench_answers", spec, lambda out, work: build(out))

    def _out(self, target: Target, bench: str) -> Path:
        d = self.out_dir / slug(target.name) / bench
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---- entry point
    def run(self, target: Target, benchmarks: Optional[Sequence[str]] = None) -> dict[str, BenchmarkResult]:
        out = {}
        for bench in benchmarks if benchmarks is not None else self.benchmarks():
            log.info("benchmark %s: %s", bench, target.name)
            out[bench] = getattr(self, f"run_{bench}")(target)
        return out

    def run_models(self, targets: Sequence[Target], benchmarks: Optional[Sequence[str]] = None
                   ) -> dict[str, dict[str, BenchmarkResult]]:
        """:meth:`run` for several models (e.g. several checkpoints), then Arena-Hard's official CI
        pooled over all of them (:func:`pool_arena_hard`) unless ``eval.arena_hard.ci=per_model``."""
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"two models share a name in {names}; their answers and judgments would mix")
        out = {t.name: self.run(t, benchmarks) for t in targets}
        if self.ec.arena_hard.get("ci", "auto") == "auto":
            pool_arena_hard(out)
        return out

    # ---- AlpacaEval 2
    def alpaca_data(self) -> tuple[list[dict], str, Optional[Path]]:
        """(reference outputs, a key of the question set, folder of the LC tables or None)."""
        bc = self.ec.alpaca_eval2
        if self.toy:
            ref = self.reference_target()
            name = f"toy_{slug(ref.name)}"
            art = self._toy_data("alpaca_eval2", lambda out: toy_sets.build_alpaca_eval(
                out, self.task, n=bc.n_toy, seed=self.ec.toy.seed, reference_name=name,
                answer=self._reference_answerer(ref)), reference=ref.key, max_new_tokens=self.ec.toy.max_new_tokens)
            path = art.path / name / "model_outputs.json"
            return ae2.load_reference_outputs(path), art.key, None
        d = ensure_files(bc.data_dir, _plain(bc.files), what="AlpacaEval 2", download=self.ec.download,
                         checks=_plain(bc.get("checks")), strict=bool(self.ec.get("verify_checksums", True)))
        glm_dir = Path(bc.get("glm_dir") or bc.data_dir)
        if bc.get("glm_files"):
            ensure_files(glm_dir, _plain(bc.glm_files), what="AlpacaEval 2 LC tables (length_controlled_v1)",
                         download=self.ec.download, required=False)
        refs = ae2.load_reference_outputs(d)
        return refs, _files_fingerprint([d / rel for rel in bc.files]), glm_dir

    def run_alpaca_eval2(self, target: Target) -> BenchmarkResult:
        bc = self.ec.alpaca_eval2
        reference, data_key, glm_dir = self.alpaca_data()
        settings = {"max_new_tokens": self._max_new_tokens("alpaca_eval2"), "temperature": float(bc.temperature)}

        def build(out: Path) -> None:
            rows = G.alpaca_eval_outputs(self._backend(target), reference, target.name, **settings)
            G.write_alpaca_eval(out, rows)

        art = self._answers(target, "alpaca_eval2", data_key, settings, build,
                            expected=[r["instruction"] for r in reference])
        outputs = ae2.read_model_outputs(art.path / "model_outputs.json")
        coverage.alpaca_outputs(outputs, reference, art.path / "model_outputs.json")
        forms = self.forms()
        if bc.annotation == "logprobs":
            spec = ae2.load_annotator()
            if forms is not None:
                forms.add_alpaca_annotator(spec)
            rows = ae2.annotate(outputs, reference, self.judge, spec=spec, generator=target.name)
        elif bc.annotation == "verdicts":
            if forms is not None:
                forms.add_pairwise(ae2.PAIRWISE_PROMPT.read_text(encoding="utf-8"))
            rows = ae2.annotate_with_verdicts(outputs, reference, self.judge, generator=target.name)
        else:
            raise ValueError(f"eval.alpaca_eval2.annotation must be 'logprobs' or 'verdicts', got {bc.annotation!r}")
        coverage.alpaca_annotations(rows, reference, self._out(target, "alpaca_eval2") / "annotations.json")
        lc_error = None
        try:
            s = ae2.score_annotations(rows, lc=bc.lc, glm_data_dir=glm_dir, model_outputs=outputs)
        except ae2.DataFormatError:  # a GLM table of the wrong format: the user must replace it
            raise
        except ValueError as e:  # the GLM cannot be fitted, e.g. every length difference equal (NaN features)
            lc_error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            log.warning("AlpacaEval LC could not be computed (%s); win rate only", lc_error)
            s = ae2.score_annotations(rows, lc=None, glm_data_dir=glm_dir, model_outputs=outputs)
        scores = ae2.flat_scores(s)
        d = self._out(target, "alpaca_eval2")
        ae2.write_annotations(d / "annotations.json", rows)
        write_json(d / "scores.json", s)
        table = [{"instruction": r["instruction"], "reference": r["output_1"], "output": r["output_2"],
                  "preference": _num(r["preference"])} for r in rows]
        details = {"answers": str(art.path / "model_outputs.json"), "annotations": str(d / "annotations.json"),
                   "annotator": s["annotator"], "lc_variant": s["lc_variant"], "lc_error": lc_error,
                   "judge": self.judge.model,
                   "reference": reference[0].get("generator") if reference else None, "toy": self.toy}
        return BenchmarkResult("alpaca_eval2", _clean(scores), details, table)

    # ---- Arena-Hard
    def arena_data(self) -> tuple[list[dict], dict, ah.ArenaJudgeConfig, str]:
        """(questions, baseline answers, judge config, a key of the question set)."""
        bc = self.ec.arena_hard
        if self.toy:
            ref = self.reference_target()
            name = f"toy_{slug(ref.name)}"

            def build(out: Path) -> None:
                count = None
                if self._token_counter() == "model":
                    tok = ref.model_and_tokenizer(self.device)[1]
                    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
                toy_sets.build_arena_hard(out, self.task, n=bc.n_toy, seed=self.ec.toy.seed, baseline_name=name,
                                          answer=self._reference_answerer(ref), count=count)

            art = self._toy_data("arena_hard", build, reference=ref.key, max_new_tokens=self.ec.toy.max_new_tokens,
                                 token_counter=self._token_counter())
            d, key, baseline = art.path, art.key, name
        else:
            d = ensure_files(bc.data_dir, _plain(bc.files), what="Arena-Hard v0.1", download=self.ec.download,
                             checks=_plain(bc.get("checks")), strict=bool(self.ec.get("verify_checksums", True)))
            key, baseline = _files_fingerprint([d / rel for rel in bc.files]), bc.baseline
        config = ah.load_judge_config(d / "judge_config.yaml")
        config = replace(config, baseline_model=baseline)
        questions = ah.load_questions(d / "question.jsonl")
        base = ah.load_baseline_answers(d / "model_answer", baseline)
        return questions, base, config, key

    def run_arena_hard(self, target: Target) -> BenchmarkResult:
        bc = self.ec.arena_hard
        questions, base, config, data_key = self.arena_data()
        settings = {"max_new_tokens": self._max_new_tokens("arena_hard"), "temperature": ah.ANSWER_TEMPERATURE,
                    "token_counter": self._token_counter()}

        def build(out: Path) -> None:
            backend = self._backend(target)
            rows = G.arena_hard_answers(backend, questions, target.name, max_new_tokens=settings["max_new_tokens"],
                                        count=G.token_counter(settings["token_counter"], backend))
            G.write_arena_hard(out, target.name, rows)

        art = self._answers(target, "arena_hard", data_key, settings, build,
                            expected=[q["question_id"] for q in questions])
        answer_file = art.path / "model_answer" / f"{target.name}.jsonl"
        answers = coverage.arena_answers(ah.read_answers(answer_file), questions, answer_file)
        if not self.toy and config.judge_model != self.judge.model:
            log.warning("Arena-Hard: judging with %s, not the benchmark's judge %s; scores are not leaderboard "
                        "numbers", self.judge.model, config.judge_model)
        config = replace(config, judge_model=self.judge.model)
        forms = self.forms()
        if forms is not None:
            forms.add_arena(config)
        judgments = ah.judge_games(self.judge, config, questions, answers, base, model=target.name)
        coverage.arena_judgments(judgments, questions, self._out(target, "arena_hard") / "judgments.jsonl", None)
        s = ah.score_judgments(judgments, {target.name: answers}, baseline=config.baseline_model,
                               n_rounds=int(bc.n_bootstrap))[target.name]
        scores = {"score": s["score"], "score_ci_low": s["ci_lower"], "score_ci_high": s["ci_upper"],
                  "ci_low": s["ci_lower"], "ci_high": s["ci_upper"], "elo": s["elo"], "elo_ci_low": s["elo_lower"],
                  "elo_ci_high": s["elo_upper"], "n_battles": s["n_battles"], "wins": s["wins"], "losses": s["losses"],
                  "ties": s["ties"], "n_games": s["n_games"], "n_games_dropped": s["n_games_dropped"],
                  "avg_tokens": s["avg_tokens"], "ci_n_models": 1}
        d = self._out(target, "arena_hard")
        ah.write_judgments(d / "judgments.jsonl", judgments)
        write_json(d / "scores.json", s)
        clusters = {q["question_id"]: q.get("cluster") for q in questions}
        table = [{"question_id": j["question_id"], "cluster": clusters.get(j["question_id"]),
                  "game1 (A=baseline)": j["games"][0].get("score"),
                  "game2 (A=model)": j["games"][1].get("score") if len(j["games"]) > 1 else None,
                  "answer": answers[j["question_id"]]["choices"][0]["turns"][0]["content"],
                  "baseline": base[j["question_id"]]["choices"][0]["turns"][0]["content"]} for j in judgments]
        details = {"answers": str(answer_file), "judgments": str(d / "judgments.jsonl"), "judge": self.judge.model,
                   "baseline": config.baseline_model, "n_bootstrap": int(bc.n_bootstrap), "toy": self.toy,
                   "ci": "per-model bootstrap (pool_arena_hard pools several models, as arena-hard-auto does)"}
        return BenchmarkResult("arena_hard", _clean(scores), details, table)

    # ---- MT-Bench
    def mt_bench_data(self) -> tuple[list[dict], dict, dict, str]:
        """(questions, reference answers, judge prompts, a key of the question set)."""
        bc = self.ec.mt_bench
        if self.toy:
            art = self._toy_data("mt_bench", lambda out: toy_sets.build_mt_bench(out, self.task, n=bc.n_toy,
                                                                                 seed=self.ec.toy.seed))
            d, key = art.path, art.key
            refs = mt.load_reference_answers(d / "reference_answer" / f"{toy_sets.REFERENCE_MODEL_ID}.jsonl")
        else:
            d = ensure_files(bc.data_dir, _plain(bc.files), what="MT-Bench", download=self.ec.download,
                             checks=_plain(bc.get("checks")), strict=bool(self.ec.get("verify_checksums", True)))
            key = _files_fingerprint([d / rel for rel in bc.files])
            refs = mt.load_reference_answers(d / "reference_answer" / "gpt-4.jsonl")
        return mt.load_questions(d / "question.jsonl"), refs, mt.load_judge_prompts(d / "judge_prompts.jsonl"), key

    def run_mt_bench(self, target: Target) -> BenchmarkResult:
        questions, refs, prompts, data_key = self.mt_bench_data()
        temps = _plain(self.ec.mt_bench.get("temperature_config")) or dict(mt.TEMPERATURE_CONFIG)
        settings = {"max_new_tokens": self._max_new_tokens("mt_bench"), "temperature_config": temps,
                    "seed": int(self.ec.seed)}

        def build(out: Path) -> None:
            rows = G.mt_bench_answers(self._backend(target), questions, target.name,
                                      max_new_tokens=settings["max_new_tokens"], temperature_config=temps)
            G.write_mt_bench(out, target.name, rows)

        art = self._answers(target, "mt_bench", data_key, settings, build,
                            expected=[q["question_id"] for q in questions])
        answer_file = art.path / "model_answer" / f"{target.name}.jsonl"
        answers = coverage.mt_answers(mt.read_answers(answer_file), questions, answer_file)
        forms = self.forms()
        if forms is not None:
            forms.add_mt_bench(prompts)
        judgments = mt.judge_answers(self.judge, prompts, questions, answers, refs, model=target.name,
                                     judge_name=self.judge.model)
        coverage.mt_judgments(judgments, questions, self._out(target, "mt_bench") / "judgments.jsonl")
        s = mt.score_judgments(judgments, questions)
        scores = {"score": s["score"], "turn1": s["turn_1"], "turn2": s["turn_2"], "n_scored": s["n_scored"],
                  "n_dropped": s["n_dropped"], "n_judgments": s["n_judgments"],
                  **{f"category/{c}": v for c, v in s["per_category"].items()}}
        d = self._out(target, "mt_bench")
        mt.write_judgments(d / "judgments.jsonl", judgments)
        write_json(d / "scores.json", s)
        cats = {q["question_id"]: q["category"] for q in questions}
        table = [{"question_id": j["question_id"], "category": cats.get(j["question_id"]), "turn": j["turn"],
                  "prompt": j["judge"][1], "score": _num(j["score"]),
                  "answer": answers[j["question_id"]]["choices"][0]["turns"][j["turn"] - 1]} for j in judgments]
        details = {"answers": str(answer_file), "judgments": str(d / "judgments.jsonl"), "judge": self.judge.model,
                   "per_category": s["per_category"], "temperature_config": temps, "toy": self.toy}
        return BenchmarkResult("mt_bench", _clean(scores), details, table)

    # ---- Open LLM Leaderboard
    def open_llm_preset(self) -> tuple[str, dict]:
        oc = self.ec.open_llm
        name = oc.preset if oc.preset != "auto" else ("toy" if self.toy else "v1")
        if name not in oc.presets:
            raise ValueError(f"unknown Open LLM preset {name!r}; choose from {sorted(oc.presets)} or auto")
        if name == "toy" and not self.toy:
            raise ValueError("the toy Open LLM preset needs world=toy (its tasks use the toy task's vocabulary)")
        return name, _plain(oc.presets[name])

    def run_open_llm(self, target: Target) -> BenchmarkResult:
        oc = self.ec.open_llm
        name, preset = self.open_llm_preset()
        d = self._out(target, "open_llm")
        include = None
        if name == "toy":
            include = ol.toy_tasks_dir(self.task, d, n=int(oc.toy.n), seed=int(oc.toy.seed))
        elif preset.get("include"):  # local task YAMLs + JSON (e.g. world=rehearsal's stand-ins)
            include = ol.localize_tasks(preset["include"], d / "tasks", list(preset["tasks"]))
        log_samples = oc.log_samples if oc.log_samples != "auto" else name == "toy"
        model, tok = target.model_and_tokenizer(self.device)
        res = ol.evaluate(model, tok, preset, include_path=include, batch_size=int(oc.batch_size), limit=oc.limit,
                          log_samples=bool(log_samples), bootstrap_iters=int(oc.bootstrap_iters), seed=int(self.ec.seed))
        write_json(d / "results.json", json.loads(json.dumps(res["results"], default=_json_default)))
        write_json(d / "scores.json", res["scores"])
        table = ol.sample_rows(res["samples"], preset["tasks"]) if log_samples else []
        if table:
            write_jsonl(d / "samples.jsonl", table)
        details = {"preset": name, "results": str(d / "results.json"), "tasks": preset["tasks"],
                   "n_samples": res["n_samples"], "toy": self.toy}
        return BenchmarkResult("open_llm", _clean(res["scores"]), details, table)


def pool_arena_hard(results: dict[str, dict[str, BenchmarkResult]]) -> dict[str, dict[str, BenchmarkResult]]:
    """Arena-Hard's official CI for models evaluated together (label -> ``Suite.run`` results):
    arena-hard-auto's ``show_result.py`` fits and bootstraps the battles of every model at once,
    so each model's 95% CI is replaced by that pooled bootstrap's (``ci_n_models``: how many were
    pooled; point scores do not change), and written next to the judgments as
    ``scores_pooled.json``. Judgments are read back from each result's files; with fewer than two
    models the results are returned as they are."""
    arena = {who: r["arena_hard"] for who, r in results.items() if "arena_hard" in r}
    if len(arena) < 2:
        return results
    baselines = {r.details["baseline"] for r in arena.values()}
    rounds = {int(r.details["n_bootstrap"]) for r in arena.values()}
    if len(baselines) > 1 or len(rounds) > 1:
        log.warning("Arena-Hard: different baselines %s or bootstrap rounds %s; CIs stay per-model",
                    sorted(baselines), sorted(rounds))
        return results
    rows = []
    for who, r in arena.items():
        rows += [dict(j, model=who) for j in coverage.arena_judgment_file(r.details["judgments"], r.details)]
    pooled = ah.score_judgments(rows, baseline=baselines.pop(), n_rounds=rounds.pop())
    for who, r in arena.items():
        p = pooled[who]
        r.scores.update({"score_ci_low": p["ci_lower"], "score_ci_high": p["ci_upper"], "ci_low": p["ci_lower"],
                         "ci_high": p["ci_upper"], "elo_ci_low": p["elo_lower"], "elo_ci_high": p["elo_upper"],
                         "ci_n_models": len(arena)})
        r.scores = _clean(r.scores)
        r.details["ci"] = f"official bootstrap pooled over {len(arena)} models: {', '.join(arena)}"
        write_json(Path(r.details["judgments"]).parent / "scores_pooled.json", {**p, "pooled_with": list(arena)})
    return results


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _clean(scores: dict) -> dict:
    """Numbers only (None and strings dropped; NaN kept out too, with a log line)."""
    out = {}
    for k, v in scores.items():
        x = _num(v)
        if x is None:
            continue
        if math.isnan(x):
            log.warning("score %s is NaN; not recorded", k)
            continue
        out[k] = x
    return out


# ---- results, tables and logs ------------------------------------------------------------------
def flat_scores(results: dict[str, BenchmarkResult]) -> dict[str, float]:
    """``eval/<benchmark>/<name>`` -> value (the keys of the results JSON and the W&B summary)."""
    return {f"eval/{b}/{k}": v for b, r in results.items() for k, v in r.scores.items()}


def details_of(results: dict[str, BenchmarkResult]) -> dict:
    return {b: r.details for b, r in results.items()}


def _fmt(v: Optional[float], spec: str) -> str:
    return "—" if v is None else format(v, spec)


def _arena_ci_label(rows: Sequence[tuple[str, dict]]) -> str:
    """Which 95% CI the Arena-Hard cells show: the official bootstrap pooled over the models
    evaluated together, or each model's own (``eval/arena_hard/ci_n_models``: how many were pooled)."""
    ns = {s.get("eval/arena_hard/ci_n_models") for _, s in rows if "eval/arena_hard/score" in s}
    ns.discard(None)
    if not ns or ns == {1}:
        return "95% CI per-model"
    return f"95% CI pooled over {max(ns):g} models" if len(ns) == 1 else "95% CI pooled (see details)"


def print_benchmark_table(rows: Sequence[tuple[str, dict]], console=None, title: str = "Benchmarks"):
    """One row per model: AlpacaEval 2 (LC = the leaderboard's ``length_controlled_v1`` only; the
    minimal variant in its own column ``LC-minimal``), Arena-Hard with its 95% CI (the header
    says per-model or pooled), MT-Bench (turns), the Open LLM averages (toy mean, v1, v2); then,
    when present, MT-Bench per category."""
    from rich.console import Console
    from rich.table import Table

    def has(key: str) -> bool:
        return any(key in s for _, s in rows)

    table = Table(title=title)
    cols: list[tuple[str, Callable[[dict], str]]] = [("model", lambda s: "")]
    ae = "eval/alpaca_eval2/"
    if has(ae + "lc_win_rate"):
        cols.append(("AlpacaEval 2 LC (%)", lambda s: _fmt(s.get(ae + "lc_win_rate"), ".1f")))
    if has(ae + "lc_minimal_win_rate"):
        cols.append(("AlpacaEval 2 LC-minimal (%) (length_controlled_minimal, not the leaderboard's LC)",
                     lambda s: _fmt(s.get(ae + "lc_minimal_win_rate"), ".1f")))
    cols.append(("AlpacaEval 2 WR (%)", lambda s: _fmt(s.get(ae + "win_rate"), ".1f")))

    def arena(s: dict) -> str:
        g = s.get
        if "eval/arena_hard/score" not in s:
            return "—"
        return (f"{g('eval/arena_hard/score'):.1f} [{_fmt(g('eval/arena_hard/score_ci_low'), '.1f')}, "
                f"{_fmt(g('eval/arena_hard/score_ci_high'), '.1f')}]")

    cols.append((f"Arena-Hard (%) [{_arena_ci_label(rows)}]", arena))

    def mtb(s: dict) -> str:
        g = s.get
        if "eval/mt_bench/score" not in s:
            return "—"
        return (f"{g('eval/mt_bench/score'):.2f} ({_fmt(g('eval/mt_bench/turn1'), '.2f')} / "
                f"{_fmt(g('eval/mt_bench/turn2'), '.2f')})")

    cols.append(("MT-Bench (T1 / T2)", mtb))
    for key, header in (("average", "Open LLM avg"), ("v1_average", "Open LLM v1 avg"),
                        ("v2_average", "Open LLM v2 avg (normalised)")):
        if has(f"eval/open_llm/{key}") or (key == "average" and not any(
                has(f"eval/open_llm/{k}") for k in ("v1_average", "v2_average"))):
            cols.append((header, lambda s, k=key: _fmt(s.get(f"eval/open_llm/{k}"), ".1f")))
    for c, _ in cols:
        table.add_column(c, justify="left" if c == "model" else "right")
    for who, s in rows:
        table.add_row(who, *[f(s) for _, f in cols[1:]])
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(table)
    cats = [c for c in mt.CATEGORIES if has(f"eval/mt_bench/category/{c}")]
    if cats:
        per_cat = Table(title="MT-Bench per category (mean of both turns, 1-10)")
        for c in ["model", *cats]:
            per_cat.add_column(c, justify="left" if c == "model" else "right")
        for who, s in rows:
            per_cat.add_row(who, *[_fmt(s.get(f"eval/mt_bench/category/{c}"), ".2f") for c in cats])
        console.print(per_cat)
    return table


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
                  load=lambda: load_pretrained(artifact.path / "model", dtype))


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
    """The benchmarks of one ``python run.py`` job: the distilled student's results and those of
    the reference models named in ``eval.benchmark_references`` (keyed by their table labels)."""

    student: dict[str, BenchmarkResult]
    references: dict[str, dict[str, BenchmarkResult]]
    judge: dict = field(default_factory=dict)   # the judge's request, cache and cost counts
    stages: dict = field(default_factory=dict)  # reference label -> its stage (sft_teacher, ...), for metric keys

    def scores(self) -> dict[str, float]:
        return flat_scores(self.student)

    def reference_scores(self) -> dict[str, dict[str, float]]:
        return {who: flat_scores(r) for who, r in self.references.items()}

    def details(self) -> dict:
        return {"student": details_of(self.student), **{who: details_of(r) for who, r in self.references.items()}}

    def print(self, student_label: str) -> None:
        rows = [(who, flat_scores(r)) for who, r in self.references.items()] + [(student_label, self.scores())]
        print_benchmark_table(rows, title="Benchmarks (toy variants)" if any(
            r.details.get("toy") for r in self.student.values()) else "Benchmarks")

    def log(self, logger) -> None:
        if logger is None:
            return
        log_tables(logger, self.student)
        for who, r in self.references.items():  # ASCII keys: reference/<stage>/eval/...
            log_tables(logger, r, prefix=f"reference/{self.stages.get(who, who)}/")


def run_pipeline_benchmarks(cfg, pipe, store, student, references: dict, name: str) -> RunBenchmarks:
    """Run ``eval.benchmarks`` on the distilled ``student`` artifact (and on the ``references``
    (label -> artifact) whose stage is listed in ``eval.benchmark_references``)."""
    ec = cfg.eval
    dtype = cfg.world.dtype
    stages = {"sft_teacher": lambda: pipe.sft("teacher"), "dpo_teacher": pipe.dpo_teacher,
              "sft_student": lambda: pipe.sft("student")}
    ref_stage = ec.toy.reference if cfg.world.source == "toy" else None
    if ref_stage is not None and ref_stage not in stages:
        raise ValueError(f"eval.toy.reference must be one of {sorted(stages)}, got {ref_stage!r}")
    family = cfg.model.family

    def toy_reference() -> Target:
        return artifact_target(f"{ref_stage}-{family}", stages[ref_stage](), dtype)

    wanted = list(ec.get("benchmark_references") or [])
    unknown = [w for w in wanted if w not in stages]
    if unknown:
        raise ValueError(f"eval.benchmark_references: unknown {unknown}; choose from {sorted(stages)}")
    out_dir = Path(cfg.paths.output_dir) / "eval"
    task = pipe.task() if cfg.world.source == "toy" else None
    with Suite(cfg, store, out_dir, task=task, reference=toy_reference if ref_stage else None) as suite:
        refs = {who: suite.run(artifact_target(f"{art.stage}-{family}", art, dtype))
                for who, art in references.items() if art.stage in wanted}
        mine = suite.run(artifact_target(name, student, dtype))
        stats = suite.judge_stats()
    if stats:
        log.info("judge: %s", stats)
    return RunBenchmarks(mine, refs, stats or {}, {who: art.stage for who, art in references.items()})
