"""A stand-in for the benchmarks' GPT-4 judge, for rehearsing ``world=full`` without an API key.

:class:`StandInJudge` answers the benchmarks' *real* judge prompts, read from the same files the
benchmarks use (AlpacaEval's annotator ``weighted_alpaca_eval_gpt4_turbo`` from the ``alpaca_eval``
package, Arena-Hard's ``judge_config.yaml``, MT-Bench's ``judge_prompts.jsonl``), in each benchmark's
verdict format: AlpacaEval's one verdict token with top log-probabilities, Arena-Hard's
``[[A>B]]``-style verdicts, MT-Bench's ``Rating: [[x]]``. It recovers the question and the answers
from the prompt (:class:`~eval.judges.verdicts.ScoringJudge`) and scores each answer by a fixed,
deterministic rule: the share of the question's distinct words (three letters or more) that the
answer uses, plus a small bonus for a non-empty answer. The numbers mean nothing about quality;
they exercise every step a real judge's replies go through (parsing, retries, caching, scoring).

:func:`serve` puts it behind :class:`~eval.judges.fake_server.FakeJudgeServer`, an OpenAI-compatible
chat-completions endpoint on 127.0.0.1, so a run reaches it with the real HTTP judge
(``judge=openai judge.base_url=http://127.0.0.1:<port>/v1``)::

    python -m distill_bench.standins serve <stand-in folder> --port 8765
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from .verdicts import JudgePrompts, ScoringJudge

STANDIN_MODEL = "standin-judge-v1"   # cached replies are keyed by the judge's model name
_WORD = re.compile(r"[A-Za-z]{3,}")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def load_forms(benchmarks_dir: str | Path) -> JudgePrompts:
    """The judge prompts of the benchmarks whose files are in ``benchmarks_dir`` (the layout of
    ``eval.data_root``: ``arena_hard_v0.1/judge_config.yaml``, ``mt_bench/judge_prompts.jsonl``),
    plus AlpacaEval 2's annotator and this project's pairwise prompt."""
    from eval.benchmarks import alpaca_eval2 as ae2
    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import mt_bench as mt

    root = Path(benchmarks_dir)
    forms = JudgePrompts()
    forms.add_alpaca_annotator(ae2.load_annotator())
    forms.add_pairwise(ae2.PAIRWISE_PROMPT.read_text(encoding="utf-8"))
    arena = root / "arena_hard_v0.1" / "judge_config.yaml"
    if arena.is_file():
        forms.add_arena(ah.load_judge_config(arena))
    prompts = root / "mt_bench" / "judge_prompts.jsonl"
    if prompts.is_file():
        forms.add_mt_bench(mt.load_judge_prompts(prompts))
    return forms


class StandInJudge(ScoringJudge):
    """Scores an answer by its overlap with the question's words (see the module docstring)."""

    def __init__(self, forms: Optional[JudgePrompts] = None, *, model: str = STANDIN_MODEL,
                 strong_margin: float = 0.3, tie_margin: float = 1e-9, cache=None):
        super().__init__(forms, strong_margin=strong_margin, tie_margin=tie_margin, cache=cache)
        self.model = model

    def rewards(self, conversations: list[list[dict]]) -> list[float]:
        return [self.reward(c) for c in conversations]

    @staticmethod
    def reward(conversation: list[dict]) -> float:
        """In [0, 1]: 0.8 · (share of the last question's words used by the answer) + 0.2 · (the answer
        is not empty)."""
        question = next((m["content"] for m in reversed(conversation) if m["role"] == "user"), "")
        answer = str(conversation[-1]["content"]) if conversation[-1]["role"] == "assistant" else ""
        q, a = _words(question), _words(answer)
        overlap = len(q & a) / len(q) if q else 0.0
        return 0.8 * overlap + 0.2 * bool(answer.strip())

    def grade(self, reward: float) -> float:
        return round(1.0 + 9.0 * reward, 1)


def serve(benchmarks_dir: str | Path, *, port: int = 0, host: str = "127.0.0.1"):
    """Start the stand-in judge behind an OpenAI-compatible server; returns the started
    :class:`~eval.judges.fake_server.FakeJudgeServer` (``.base_url``, ``.calls``, ``.stop()``)."""
    from .fake_server import FakeJudgeServer

    judge = StandInJudge(load_forms(benchmarks_dir))
    return FakeJudgeServer(judge.answer_body, port=port, host=host).start()
