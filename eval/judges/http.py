"""A judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, a local server).

- The API key is read from the environment variable *named* in the config (``api_key_env``); the
  key itself never appears in a config or a results file. ``api_key_env: null`` is for servers
  that need no key.
- Concurrency is bounded by a thread pool (``max_concurrency``), optionally paced to
  ``max_requests_per_minute``.
- 429s, 5xx, 408/409, timeouts, dropped connections and unreadable response bodies are retried with
  exponential backoff (a server's ``Retry-After`` is honoured, capped at ``backoff_max_s``).
- A ``validate`` callback lets the caller reject a reply it cannot parse (e.g. no verdict); the
  request is then asked again, up to ``invalid_retries`` times.
- Every reply that passed is written to the on-disk cache before it is returned.
- Token and cost accounting (prices per 1M tokens), failure counting, and a hard stop
  (:class:`JudgeFailureRateError`) when the share of failed requests exceeds ``max_failure_share``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import openai

from distill.progress import Tracker, current_stage

from .base import InvalidReplyError, JudgeError, JudgeFailureRateError, JudgeReply, Messages, Validator, make_request
from .cache import JudgeCache

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 429}


@dataclass
class JudgeStats:
    """Running totals for one judge object (all batches)."""

    requests: int = 0          # requests asked of the judge (cache hits included)
    cache_hits: int = 0
    api_calls: int = 0         # HTTP calls that returned a reply
    retries: int = 0           # extra attempts (transport errors and rejected replies)
    invalid_replies: int = 0   # replies the validator rejected
    failures: int = 0          # requests that ended without an accepted reply
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def failure_share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "failure_share": self.failure_share}


def _token_count(value) -> int:
    """A usage field as an int: servers send ints, but also floats, numeric strings or nulls; anything
    else counts 0 (the cost report is then low, and says nothing false about the verdict)."""
    try:
        n = float(value)
    except (TypeError, ValueError):
        return 0
    return int(n) if n == n and 0 <= n < 1e15 else 0


class _MalformedResponse(Exception):
    """The server answered 2xx with a body that is not a chat completion."""


def _is_retryable(e: BaseException) -> bool:
    if isinstance(e, (openai.APIConnectionError, _MalformedResponse, openai.APIResponseValidationError)):
        return True
    if isinstance(e, openai.APIStatusError):
        return e.status_code in _RETRY_STATUS or e.status_code >= 500
    return False


def _retry_after(e: BaseException) -> Optional[float]:
    response = getattr(e, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class HTTPJudge:
    """OpenAI-compatible judge; see the module docstring for the behaviour of each option."""

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key_env: Optional[str] = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        max_requests_per_minute: Optional[float] = None,
        max_retries: int = 6,
        invalid_retries: int = 2,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 120.0,
        max_failure_share: float = 0.05,
        price_input_per_1m: float = 0.0,
        price_output_per_1m: float = 0.0,
        cache: "JudgeCache | str | os.PathLike | None" = None,
        client: Optional[openai.OpenAI] = None,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if not 0.0 <= max_failure_share <= 1.0:
            raise ValueError(f"max_failure_share must be in [0, 1], got {max_failure_share}")
        self.model = model
        self.base_url = base_url
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.invalid_retries = int(invalid_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_failure_share = float(max_failure_share)
        self.price_input_per_1m = float(price_input_per_1m)
        self.price_output_per_1m = float(price_output_per_1m)
        self.cache = JudgeCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        self._min_interval = 60.0 / max_requests_per_minute if max_requests_per_minute else 0.0
        self._next_slot = 0.0
        if client is None:
            client = openai.OpenAI(api_key=self._api_key(api_key_env), base_url=base_url, timeout=timeout_s,
                                   max_retries=0)
        self.client = client

    @staticmethod
    def _api_key(env: Optional[str]) -> str:
        if env is None:
            return "EMPTY"  # servers without authentication (a local vLLM, the fake server)
        key = os.environ.get(env)
        if not key:
            raise JudgeError(
                f"The judge's API key is read from the environment variable {env!r}, which is not set. "
                f"Run `export {env}=...` before evaluating (or set api_key_env: null for a server "
                f"that needs no key)."
            )
        return key

    # ---- one request -------------------------------------------------------------------------
    def complete(self, messages: Messages, *, temperature: float, max_tokens: int, logprobs: bool = False,
                 top_logprobs: Optional[int] = None, validate: Optional[Validator] = None) -> JudgeReply:
        """Answer one request (cache first); raise :class:`JudgeError` if it cannot be answered."""
        request = make_request(messages, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs,
                               top_logprobs=top_logprobs)
        self._count(requests=1)
        try:
            return self._complete(request, validate)
        except JudgeError:
            self._count(failures=1)
            raise

    def _complete(self, request: dict, validate: Optional[Validator]) -> JudgeReply:
        if self.cache is not None:
            hit = self.cache.get(self.model, request)
            if hit is not None:
                reply = JudgeReply.from_dict(hit, cached=True)
                if validate is None or validate(reply):
                    self._count(cache_hits=1)
                    return reply
        transport_attempts, invalid_left = 0, self.invalid_retries
        while True:
            try:
                reply = self._call(request)
            except Exception as e:  # noqa: BLE001 - classified just below
                if not _is_retryable(e):
                    raise JudgeError(f"judge {self.model!r}: request failed and is not retryable: {e!r}") from e
                if transport_attempts >= self.max_retries:
                    raise JudgeError(f"judge {self.model!r}: gave up after {transport_attempts + 1} attempts; "
                                     f"last error: {e!r}") from e
                self._count(retries=1)
                time.sleep(self._backoff(transport_attempts, e))
                transport_attempts += 1
                continue
            if validate is not None and not validate(reply):
                self._count(invalid_replies=1)
                if invalid_left <= 0:
                    raise InvalidReplyError(f"judge {self.model!r}: reply rejected by the validator "
                                            f"{self.invalid_retries + 1} times; last: {reply.text[:200]!r}", reply)
                invalid_left -= 1
                self._count(retries=1)
                continue
            if self.cache is not None:
                self.cache.put(self.model, request, reply.to_dict())
            return reply

    def _backoff(self, attempt: int, error: BaseException) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt) * (0.5 + 0.5 * random.random())
        after = _retry_after(error)
        return min(self.backoff_max_s, max(delay, after)) if after is not None else delay

    def _pace(self) -> None:
        if not self._min_interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._min_interval
        if slot > now:
            time.sleep(slot - now)

    def _call(self, request: dict) -> JudgeReply:
        self._pace()
        kwargs = dict(model=self.model, messages=request["messages"], temperature=request["temperature"],
                      max_tokens=request["max_tokens"])
        if request["logprobs"]:
            kwargs["logprobs"] = True
            if request["top_logprobs"] is not None:
                kwargs["top_logprobs"] = request["top_logprobs"]
        try:
            response = self.client.chat.completions.create(**kwargs)
        except json.JSONDecodeError as e:
            raise _MalformedResponse(f"response body is not JSON: {e}") from e
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError) as e:
            raise _MalformedResponse(f"not a chat completion: {str(response)[:200]!r}") from e
        top = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if request["logprobs"] and content:
            top = [[{"token": t.token, "logprob": float(t.logprob)} for t in (c.top_logprobs or [])] for c in content]
        usage = {}
        if getattr(response, "usage", None) is not None:  # bookkeeping only: never fails a valid verdict
            usage = {k: _token_count(getattr(response.usage, k, None)) for k in ("prompt_tokens", "completion_tokens")}
        cost = (usage.get("prompt_tokens", 0) * self.price_input_per_1m
                + usage.get("completion_tokens", 0) * self.price_output_per_1m) / 1e6
        self._count(api_calls=1, prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0), cost_usd=cost)
        return JudgeReply(text=text, top_logprobs=top, usage=usage)

    # ---- batches -----------------------------------------------------------------------------
    def complete_many(self, requests: Sequence[dict], *, validate: Optional[Validator] = None
                      ) -> list[Optional[JudgeReply]]:
        """Answer requests concurrently, in order; failed ones come back as None. A request that
        repeats an earlier one of the batch is asked once and counted as a cache hit.

        Then raises :class:`JudgeFailureRateError` if the failed share of everything this judge was
        asked so far exceeds ``max_failure_share`` (counting over the judge's life keeps a small
        follow-up batch from tripping on one failure). Replies that did arrive are already cached,
        so a rerun after fixing the cause is cheap.
        """
        results: list[Optional[JudgeReply]] = [None] * len(requests)
        errors: list[str] = []
        # identical requests in one batch are asked once (concurrent copies would all miss the cache)
        first: dict[str, int] = {}
        for i, r in enumerate(requests):
            first.setdefault(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str), i)
        unique = sorted(first.values())

        def one(i: int) -> None:
            try:
                results[i] = self.complete(**requests[i], validate=validate)
            except JudgeError as e:
                errors.append(str(e))
            bar.advance(1, failed=len(errors) or None)

        with Tracker(f"judge {self.model}", total=len(unique), stage=current_stage() or "judging",
                     unit="requests") as bar, ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            list(pool.map(one, unique))
        for i, r in enumerate(requests):
            j = first[json.dumps(r, sort_keys=True, ensure_ascii=False, default=str)]
            if j != i:
                results[i] = None if results[j] is None else dataclasses.replace(results[j], cached=True)
                self._count(requests=1, **({"failures": 1} if results[j] is None else {"cache_hits": 1}))
        if errors:
            log.warning("judge %s: %d of %d requests failed; first: %s", self.model, len(errors), len(requests),
                        errors[0])
            self.check_failure_share(first_error=errors[0])
        return results

    def check_failure_share(self, first_error: Optional[str] = None) -> None:
        """Raise if the failed share over everything this judge was asked so far is too high."""
        s = self.stats
        if s.requests and s.failure_share > self.max_failure_share:
            raise JudgeFailureRateError(
                f"judge {self.model!r}: {s.failures} of {s.requests} requests failed "
                f"({s.failure_share:.1%} > max_failure_share={self.max_failure_share:.1%}); scores from these "
                f"replies would not be trustworthy." + (f" First error of the last batch: {first_error}"
                                                         if first_error else ""))

    def _count(self, **deltas) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)
