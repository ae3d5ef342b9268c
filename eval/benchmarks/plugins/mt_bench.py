"""MT-Bench as a suite benchmark: two turns per question, single-answer grading 1-10 (reference-guided
for math, reasoning and coding), per-turn and per-category averages (:mod:`eval.benchmarks.mt_bench`)."""
from __future__ import annotations

from pathlib import Path

from eval import generate as G
from eval.benchmarks import mt_bench as mt
from eval.benchmarks import toy as toy_sets
from eval.benchmarks import coverage, write_json
from eval.benchmarks.base import (Benchmark, BenchmarkResult, Column, Target, clean, files_fingerprint, fmt, num, plain,
                                  score_cell)
from eval.benchmarks.sources import ensure_files


class MTBench(Benchmark):
    name = "mt_bench"
    order = 30
    judged = True
    files = True
    headline = ("score",)

    def load(self) -> tuple[list[dict], dict, dict, str]:
        """(questions, reference answers, judge prompts, a key of the question set)."""
        s = self.suite
        bc = s.ec.mt_bench
        if s.toy:
            art = s.toy_data("mt_bench", lambda out: toy_sets.build_mt_bench(out, s.task, n=bc.n_toy,
                                                                              seed=s.ec.toy.seed))
            d, key = art.path, art.key
            refs = mt.load_reference_answers(d / "reference_answer" / f"{toy_sets.REFERENCE_MODEL_ID}.jsonl")
        else:
            d = ensure_files(bc.data_dir, plain(bc.files), what="MT-Bench", download=s.ec.download,
                             checks=plain(bc.get("checks")), strict=bool(s.ec.get("verify_checksums", True)))
            key = files_fingerprint([d / rel for rel in bc.files])
            refs = mt.load_reference_answers(d / "reference_answer" / "gpt-4.jsonl")
        return mt.load_questions(d / "question.jsonl"), refs, mt.load_judge_prompts(d / "judge_prompts.jsonl"), key

    def expected(self, items) -> list:
        return [q["question_id"] for q in items[0]]

    def temperatures(self) -> dict:
        return plain(self.suite.ec.mt_bench.get("temperature_config")) or dict(mt.TEMPERATURE_CONFIG)

    def generate(self, target: Target, items):
        s = self.suite
        questions, _, _, data_key = items
        temps = self.temperatures()
        settings = {"max_new_tokens": s.max_new_tokens(self.name), "temperature_config": temps,
                    "seed": int(s.ec.seed)}

        def build(out: Path) -> None:
            rows = G.mt_bench_answers(s.backend(target), questions, target.name,
                                      max_new_tokens=settings["max_new_tokens"], temperature_config=temps)
            G.write_mt_bench(out, target.name, rows)

        return s.answers(target, self.name, data_key, settings, build, expected=self.expected(items))

    def judge(self, target: Target, items, answers) -> list[dict]:
        s = self.suite
        questions, refs, prompts, _ = items
        forms = s.forms()
        if forms is not None:
            forms.add_mt_bench(prompts)
        answer_file = answers.path / "model_answer" / f"{target.name}.jsonl"
        model_answers = coverage.mt_answers(mt.read_answers(answer_file), questions, answer_file)
        return mt.judge_answers(s.judge, prompts, questions, model_answers, refs, model=target.name,
                                judge_name=s.judge.model)

    def score(self, target: Target, items, answers, judgments) -> BenchmarkResult:
        s = self.suite
        questions = items[0]
        answer_file = answers.path / "model_answer" / f"{target.name}.jsonl"
        model_answers = coverage.mt_answers(mt.read_answers(answer_file), questions, answer_file)
        coverage.mt_judgments(judgments, questions, s.out(target, self.name) / "judgments.jsonl")
        sc = mt.score_judgments(judgments, questions)
        scores = {"score": sc["score"], "turn1": sc["turn_1"], "turn2": sc["turn_2"], "n_scored": sc["n_scored"],
                  "n_dropped": sc["n_dropped"], "n_judgments": sc["n_judgments"],
                  **{f"category/{c}": v for c, v in sc["per_category"].items()}}
        d = s.out(target, self.name)
        mt.write_judgments(d / "judgments.jsonl", judgments)
        write_json(d / "scores.json", sc)
        cats = {q["question_id"]: q["category"] for q in questions}
        table = [{"question_id": j["question_id"], "category": cats.get(j["question_id"]), "turn": j["turn"],
                  "prompt": j["judge"][1], "score": num(j["score"]),
                  "answer": model_answers[j["question_id"]]["choices"][0]["turns"][j["turn"] - 1]} for j in judgments]
        details = {"answers": str(answer_file), "judgments": str(d / "judgments.jsonl"), "judge": s.judge.model,
                   "per_category": sc["per_category"], "temperature_config": self.temperatures(), "toy": s.toy}
        return BenchmarkResult(self.name, clean(scores), details, table)

    @classmethod
    def columns(cls, rows) -> list[Column]:
        p = cls.prefix
        cell = score_cell(p + "score", ".2f", lambda s: f"({fmt(s.get(p + 'turn1'), '.2f')} / {fmt(s.get(p + 'turn2'), '.2f')})")
        return [Column("MT-Bench (T1 / T2)", cell)]

    @classmethod
    def tables(cls, rows) -> list[tuple[str, list[Column]]]:
        cats = [c for c in mt.CATEGORIES if any(f"{cls.prefix}category/{c}" in s for _, s in rows)]
        if not cats:
            return []
        return [("MT-Bench per category (mean of both turns, 1-10)",
                 [Column(c, lambda s, c=c: fmt(s.get(f"{cls.prefix}category/{c}"), ".2f")) for c in cats])]
