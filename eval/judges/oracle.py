"""The toy world's oracle as a judge: it answers every benchmark's judge prompt from the exact
reward of :class:`~toyworld.task.ToyTask`, in that benchmark's verdict format.

The oracle recovers the true answer from the conversation itself: the first user turn is a toy
instruction (``sort : d b a c``); a later ``<op> : it`` applies ``<op>`` to the previous true answer
(the second turn of :meth:`ToyTask.two_turn_rows`). The response judged is the last assistant turn.

- pairwise (AlpacaEval, our pairwise prompt, Arena-Hard): the higher reward wins; equal rewards
  tie; a difference of at least ``strong_margin`` (default 0.3, e.g. a missing bracket format,
  worth 0.4) is a strong win in Arena-Hard's labels. AlpacaEval's reply gives the winning token all
  the probability (log-probability 0 against -100), a tie 0.5 each.
- single-answer grading (MT-Bench): ``1 + 9 * reward``, one decimal.

:class:`OracleJudge` answers in-process; :class:`ServedOracleJudge` serves the same oracle from a
local OpenAI-compatible server (:class:`~eval.judges.fake_server.FakeJudgeServer`) and talks to it
through :class:`~eval.judges.http.HTTPJudge`, so the toy world exercises the HTTP path (retries,
concurrency, the on-disk cache) exactly as a real judge would.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional

from toyworld.task import ToyTask, solve

from .http import HTTPJudge
from .verdicts import JudgePrompts, ScoringJudge, UnknownRequestError

ORACLE_MODEL = "toy-oracle-v1"  # bump when the oracle's verdicts change (cached replies are keyed by it)
_INSTRUCTION = re.compile(r"^\s*(\w+)\s*:\s*(.*?)\s*$", re.DOTALL)


def _task(task) -> ToyTask:
    if isinstance(task, ToyTask):
        return task
    if isinstance(task, Mapping):
        return ToyTask(**dict(task))
    raise TypeError(f"task must be a ToyTask or its parameters, got {type(task).__name__}")


class OracleJudge(ScoringJudge):
    """The exact toy-task reward behind every benchmark's verdict format."""

    def __init__(self, task: "ToyTask | Mapping", forms: Optional[JudgePrompts] = None, *, model: str = ORACLE_MODEL,
                 strong_margin: float = 0.3, tie_margin: float = 1e-9, cache=None):
        super().__init__(forms, strong_margin=strong_margin, tie_margin=tie_margin, cache=cache)
        self.task = _task(task)
        self.model = model

    def truth(self, conversation: list[dict]) -> list[str]:
        """The exact answer to the conversation's last user turn."""
        answer: Optional[list[str]] = None
        for msg in conversation:
            if msg["role"] != "user":
                continue
            m = _INSTRUCTION.match(msg["content"])
            if m is None or m.group(1) not in self.task.cfg.ops:
                raise UnknownRequestError(f"not a toy-task instruction: {msg['content'][:80]!r}")
            op, rest = m.group(1), m.group(2).split()
            if rest == ["it"]:
                if answer is None:
                    raise UnknownRequestError(f"{msg['content']!r} refers to no earlier answer")
                items = answer
            else:
                items = rest
            bad = [c for c in items if c not in self.task.letters]
            if bad:
                raise UnknownRequestError(f"not a toy-task instruction (unknown items {bad[:3]}): {msg['content'][:80]!r}")
            answer = solve(op, list(items), self.task.letters)
        if answer is None:
            raise UnknownRequestError("the conversation has no user turn")
        return answer

    def rewards(self, conversations: list[list[dict]]) -> list[float]:
        return [self.task.reward(c[-1]["content"], self.truth(c)) for c in conversations]

    def grade(self, reward: float) -> float:
        return round(1.0 + 9.0 * reward, 1)


class ServedOracleJudge(HTTPJudge):
    """The oracle behind a local OpenAI-compatible server on 127.0.0.1, reached over HTTP.

    ``close()`` stops the server (the runners call it when they are done)."""

    def __init__(self, task: "ToyTask | Mapping", forms: Optional[JudgePrompts] = None, *, model: str = ORACLE_MODEL,
                 strong_margin: float = 0.3, tie_margin: float = 1e-9, max_concurrency: int = 4,
                 max_retries: int = 2, cache=None, **http_kwargs):
        from .fake_server import FakeJudgeServer

        self.oracle = OracleJudge(task, forms, model=model, strong_margin=strong_margin, tie_margin=tie_margin)
        self.server = FakeJudgeServer(self.oracle.answer_body).start()
        http_kwargs.setdefault("backoff_base_s", 0.05)
        super().__init__(model, base_url=self.server.base_url, api_key_env=None, max_concurrency=max_concurrency,
                         max_retries=max_retries, cache=cache, **http_kwargs)

    @property
    def forms(self) -> JudgePrompts:
        return self.oracle.forms

    def close(self) -> None:
        self.server.stop()
        if self.cache is not None:
            self.cache.close()
