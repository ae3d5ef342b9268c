"""The Open LLM Leaderboard as a suite benchmark: ``lm_eval.simple_evaluate`` on the in-memory model,
a preset of tasks (v1, v2, or the toy world's local tasks; :mod:`eval.benchmarks.open_llm`)."""
from __future__ import annotations

import json
from pathlib import Path

from eval.benchmarks import open_llm as ol
from eval.benchmarks import write_json, write_jsonl
from eval.benchmarks.base import Benchmark, BenchmarkResult, Column, Target, clean, fmt, plain


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


class OpenLLM(Benchmark):
    name = "open_llm"
    order = 40
    # the toy preset's average, or the leaderboard's
    headline = ("average", "v1_average", "v2_average")

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        preset = cfg.eval.open_llm.preset
        if preset != "auto" and preset not in cfg.eval.open_llm.presets:
            return [f"eval.open_llm.preset={preset}: choose auto or one of {sorted(cfg.eval.open_llm.presets)}"]
        if preset == "toy" and cfg.world.source != "toy":
            return ["eval.open_llm.preset=toy needs world=toy"]
        return []

    @classmethod
    def file_problems(cls, cfg) -> list[str]:
        oc = cfg.eval.open_llm
        spec = oc.presets.get(oc.preset) if oc.preset != "auto" else None
        include = spec.get("include") if spec is not None else None
        if include:
            missing = [t for t in spec.tasks if not any(Path(include).glob(f"{t}.yaml"))]
            if missing:
                return [f"eval.open_llm.presets.{oc.preset}.include={include}: no task YAML for {missing}; "
                        "write them there (python -m distill_bench.standins build) or fix the path"]
        return []

    def load(self) -> tuple[str, dict]:
        """(preset name, preset)."""
        oc, toy = self.suite.ec.open_llm, self.suite.toy
        name = oc.preset if oc.preset != "auto" else ("toy" if toy else "v1")
        if name not in oc.presets:
            raise ValueError(f"unknown Open LLM preset {name!r}; choose from {sorted(oc.presets)} or auto")
        if name == "toy" and not toy:
            raise ValueError("the toy Open LLM preset needs world=toy (its tasks use the toy task's vocabulary)")
        return name, plain(oc.presets[name])

    def generate(self, target: Target, items):
        """lm-eval generates and scores in one call (:meth:`judge`); here: the model."""
        return target.model_and_tokenizer(self.suite.device)

    def judge(self, target: Target, items, answers) -> dict:
        s = self.suite
        oc = s.ec.open_llm
        name, preset = items
        model, tok = answers
        d = s.out(target, self.name)
        include = None
        if name == "toy":
            include = ol.toy_tasks_dir(s.task, d, n=int(oc.toy.n), seed=int(oc.toy.seed))
        elif preset.get("include"):  # local task YAMLs + JSON (e.g. world=rehearsal's stand-ins)
            include = ol.localize_tasks(preset["include"], d / "tasks", list(preset["tasks"]))
        return ol.evaluate(model, tok, preset, include_path=include, batch_size=int(oc.batch_size), limit=oc.limit,
                           log_samples=self._log_samples(name), bootstrap_iters=int(oc.bootstrap_iters),
                           seed=int(s.ec.seed))

    def _log_samples(self, name: str) -> bool:
        oc = self.suite.ec.open_llm
        return bool(oc.log_samples if oc.log_samples != "auto" else name == "toy")

    def score(self, target: Target, items, answers, res) -> BenchmarkResult:
        s = self.suite
        name, preset = items
        d = s.out(target, self.name)
        write_json(d / "results.json", json.loads(json.dumps(res["results"], default=_json_default)))
        write_json(d / "scores.json", res["scores"])
        table = ol.sample_rows(res["samples"], preset["tasks"]) if self._log_samples(name) else []
        if table:
            write_jsonl(d / "samples.jsonl", table)
        details = {"preset": name, "results": str(d / "results.json"), "tasks": preset["tasks"],
                   "n_samples": res["n_samples"], "toy": s.toy}
        return BenchmarkResult(self.name, clean(res["scores"]), details, table)

    @classmethod
    def columns(cls, rows) -> list[Column]:
        """The toy mean, v1 and v2 averages: those present (the toy mean alone when none is)."""
        has = lambda key: any(cls.prefix + key in s for _, s in rows)  # noqa: E731
        cols = []
        for key, header in (("average", "Open LLM avg"), ("v1_average", "Open LLM v1 avg"),
                            ("v2_average", "Open LLM v2 avg (normalised)")):
            if has(key) or (key == "average" and not any(has(k) for k in ("v1_average", "v2_average"))):
                cols.append(Column(header, lambda s, k=key: fmt(s.get(f"{cls.prefix}{k}"), ".1f")))
        return cols
