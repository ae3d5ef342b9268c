"""Judges: anything that answers the benchmarks' judge prompts.

- :mod:`eval.judges.base` -- the :class:`Judge` protocol, :class:`JudgeReply`, errors, a
  function-backed judge for oracles and tests, and :func:`complete_all` for batches.
- :mod:`eval.judges.http` -- :class:`HTTPJudge`, any OpenAI-compatible endpoint, with retries,
  pacing, cost accounting and a failure-share stop.
- :mod:`eval.judges.cache` -- :class:`JudgeCache`, replies on disk keyed by (judge, request).
- :mod:`eval.judges.fake_server` -- :class:`FakeJudgeServer`, a local OpenAI-compatible server.
"""
from .base import (
    FunctionJudge,
    InvalidReplyError,
    Judge,
    JudgeError,
    JudgeFailureRateError,
    JudgeReply,
    complete_all,
    make_request,
)
from .cache import JudgeCache

__all__ = ["FunctionJudge", "InvalidReplyError", "Judge", "JudgeCache", "JudgeError", "JudgeFailureRateError",
           "JudgeReply", "complete_all", "make_request"]
