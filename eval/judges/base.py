"""The judge interface every benchmark talks to.

A judge turns a chat request (OpenAI-style ``messages``) into a :class:`JudgeReply`. Benchmarks build
the request exactly as the benchmark's authors do and parse the reply themselves; a judge knows
nothing about verdicts except through an optional ``validate`` callback, which lets an HTTP judge
re-ask when a reply cannot be parsed.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

Messages = list[dict]
Validator = Callable[["JudgeReply"], bool]


@dataclass(frozen=True)
class JudgeReply:
    """What a judge said.

    ``top_logprobs`` has one entry per generated token, each a list of ``{"token", "logprob"}``
    alternatives (the OpenAI ``logprobs.content[i].top_logprobs`` shape), or None when not asked for.
    ``usage`` holds ``prompt_tokens`` and ``completion_tokens`` when the server reported them.
    """

    text: str
    top_logprobs: Optional[list[list[dict]]] = None
    usage: dict = field(default_factory=dict)
    cached: bool = False

    def to_dict(self) -> dict:
        return {"text": self.text, "top_logprobs": self.top_logprobs, "usage": dict(self.usage)}

    @classmethod
    def from_dict(cls, d: dict, *, cached: bool = False) -> "JudgeReply":
        return cls(text=d["text"], top_logprobs=d.get("top_logprobs"), usage=dict(d.get("usage") or {}),
                   cached=cached)


class JudgeError(RuntimeError):
    """A judge request that could not be answered (after the judge's own retries)."""


class InvalidReplyError(JudgeError):
    """The judge kept answering, but never in a form the caller's validator accepts."""

    def __init__(self, message: str, reply: Optional[JudgeReply] = None):
        super().__init__(message)
        self.reply = reply


class JudgeFailureRateError(JudgeError):
    """Too large a share of a batch's requests failed for its scores to be trusted."""


@runtime_checkable
class Judge(Protocol):
    """Anything that answers chat requests: an HTTP endpoint, an oracle, a test double."""

    model: str

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float,
        max_tokens: int,
        logprobs: bool = False,
        top_logprobs: Optional[int] = None,
    ) -> JudgeReply: ...


def make_request(messages: Messages, *, temperature: float, max_tokens: int, logprobs: bool = False,
                 top_logprobs: Optional[int] = None) -> dict:
    """The canonical request dict (also the cache key's content, together with the judge's model)."""
    return {"messages": [dict(m) for m in messages], "temperature": float(temperature),
            "max_tokens": int(max_tokens), "logprobs": bool(logprobs), "top_logprobs": top_logprobs}


def complete_all(judge: Judge, requests: Sequence[dict], *, validate: Optional[Validator] = None
                 ) -> list[Optional[JudgeReply]]:
    """Answer a batch of requests (dicts from :func:`make_request`).

    Uses the judge's own ``complete_many`` when it has one (concurrency, retries, failure
    accounting; failed items come back as None). Otherwise calls ``complete`` one by one; a reply
    the validator rejects comes back as None there too.
    """
    many = getattr(judge, "complete_many", None)
    if callable(many):
        return many(list(requests), validate=validate)
    out: list[Optional[JudgeReply]] = []
    for req in requests:
        reply = judge.complete(**req)
        out.append(reply if validate is None or validate(reply) else None)
    return out


class FunctionJudge:
    """A judge backed by a Python function ``fn(messages, **request) -> str | JudgeReply``.

    For oracles and tests: counts its calls, records requests, and is safe to call from threads.
    """

    def __init__(self, fn: Callable[..., Any], model: str = "function-judge"):
        self.fn = fn
        self.model = model
        self.calls = 0
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    def complete(self, messages: Messages, *, temperature: float, max_tokens: int, logprobs: bool = False,
                 top_logprobs: Optional[int] = None) -> JudgeReply:
        req = make_request(messages, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs,
                           top_logprobs=top_logprobs)
        with self._lock:
            self.calls += 1
            self.requests.append(req)
        out = self.fn(req["messages"], temperature=temperature, max_tokens=max_tokens, logprobs=logprobs,
                      top_logprobs=top_logprobs)
        return out if isinstance(out, JudgeReply) else JudgeReply(text=str(out))
