"""The toy world's oracle as a benchmark: every model's greedy answers to the held-out prompts
(the pipeline's ``generate`` artifact), scored exactly by the toy task: mean reward, correctness,
format rate, and the win rate against the SFT student with a bootstrap CI (``toy/<name>``)."""
from __future__ import annotations

import numpy as np

from distill.results import bootstrap_ci, check_answers
from eval.benchmarks.base import Benchmark, BenchmarkResult, Column, Target, fmt
from toyworld.task import parse  # the oracle's own format test: a list wrapped in "[ ... ]"


def oracle_scores(task, rows: list[dict], baseline: list[dict] | None, n_boot: int, seed: int) -> dict:
    """Mean oracle reward; win rate (ties ½) against ``baseline``'s responses with a bootstrap CI."""
    rewards = [task.reward(r["response"], r["answer"]) for r in rows]
    scores = {"toy/oracle_reward": float(np.mean(rewards)),
              "toy/format_rate": float(np.mean([parse(r["response"])[1] for r in rows])),
              "toy/correctness": float(np.mean([task.correctness(r["response"], r["answer"]) for r in rows]))}
    if baseline is not None:
        wins = [100 * task.judge(a["response"], b["response"], a["answer"]) for a, b in zip(rows, baseline)]
        lo, hi = bootstrap_ci(wins, n_boot=n_boot, seed=seed)
        scores.update({"toy/win_rate": float(np.mean(wins)), "toy/win_rate_ci_low": lo, "toy/win_rate_ci_high": hi})
    return scores


class ToyOracle(Benchmark):
    """world=toy, every pipeline run: the oracle scores the student and the reference models on the
    ``eval.n_prompts`` held-out prompts; the baseline of the win rate is the SFT student."""

    name = "toy"
    prefix = "toy/"
    order = 0
    always = True
    headline = ("win_rate", "oracle_reward")

    def load(self) -> list[dict]:
        return self.suite.need_pipe().rows("eval", "prompts")[: self.suite.ec.n_prompts]

    def generate(self, target: Target, items: list[dict]) -> list[dict]:
        """Every eval prompt answered once, in order, before anything is scored."""
        if target.artifact is None:
            raise ValueError(f"the toy oracle scores the pipeline's generations; {target.name} is not a pipeline "
                             "artifact (evaluate it with eval.benchmarks instead)")
        path = self.suite.need_pipe().generations(target.artifact).path / "generations.jsonl"
        from distill import data as D  # here: it imports torch, and the tables load every plugin (a finished run's
        # rerun prints its table without torch)

        return check_answers(D.read_jsonl(path), items, path, fields=("prompt", "answer"))

    def judge(self, target: Target, items: list[dict], answers: list[dict]) -> list[dict] | None:
        """The baseline's answers (the SFT student's), which the oracle compares each answer with."""
        pipe = self.suite.need_pipe()
        return self.generate(Target("sft_student", "", load=lambda: None, artifact=pipe.sft("student")), items)

    def score(self, target: Target, items, answers, baseline) -> BenchmarkResult:
        ec = self.suite.ec
        flat = oracle_scores(self.suite.task, answers, baseline, int(ec.n_boot), int(self.suite.cfg.seed))
        return BenchmarkResult(self.name, {k[len(self.prefix):]: v for k, v in flat.items()}, {}, [])

    @classmethod
    def columns(cls, rows) -> list[Column]:
        def win(s: dict) -> str:
            wr = s.get("toy/win_rate")
            return (f"{wr:5.1f} [{s['toy/win_rate_ci_low']:5.1f}, {s['toy/win_rate_ci_high']:5.1f}]"
                    if wr is not None else "—")

        return [Column("oracle reward", lambda s: fmt(s.get("toy/oracle_reward"), ".3f")),
                Column("win rate vs SFT student [95% CI]", win)]
