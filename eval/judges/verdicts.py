"""Judges that score responses themselves and answer the benchmarks' judge prompts in each
benchmark's own verdict format (the toy oracle, a reward model).

A benchmark builds its judge request exactly as its authors do (AlpacaEval's annotator prompt,
Arena-Hard's ``judge_config.yaml``, FastChat's ``judge_prompts.jsonl``) and parses the reply with its
own parser. A :class:`ScoringJudge` reads such a request back: each known prompt is a
:class:`RequestForm` whose templates are turned into patterns, so the fields a benchmark filled in
(the question, the answers, the conversation) are recovered from the messages. The judge then
scores the conversations with :meth:`ScoringJudge.rewards` and writes the verdict the benchmark
expects:

============== ===================================================== =====================================
kind           request                                               reply
============== ===================================================== =====================================
alpaca_logprob AlpacaEval annotator (``{instruction}``,              one token, ``m`` (first output) or
               ``{output_1}``, ``{output_2}``)                       ``M``, with top log-probabilities
pairwise_tie   ``eval/prompts/pairwise_preference.txt``              ``[[1]]``, ``[[2]]`` or ``[[tie]]``
arena          Arena-Hard (``{question_1}``, ``{answer_1}`` = A,     ``[[A>>B]]`` ... ``[[B>>A]]``
               ``{answer_2}`` = B)
single         MT-Bench turn 1 (``{question}``, ``{answer}``)        ``Rating: [[x]]``, x in 1-10
single_multi   MT-Bench turn 2 (``{question_1}``, ``{answer_1}``,    ``Rating: [[x]]`` for the 2nd answer
               ``{question_2}``, ``{answer_2}``)
============== ===================================================== =====================================

The forms are registered by the benchmark runners from the very files they use, so a judge answers
the real prompts as well as the toy ones. A request that matches no form raises
:class:`UnknownRequestError`: a scoring judge never guesses.
"""
from __future__ import annotations

import math
import re
import string
import threading
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from .base import JudgeError, JudgeReply, Messages, Validator, make_request
from .cache import JudgeCache

# FastChat llm_judge's single-answer grading prompts: (reference-guided, turn) -> prompt name
MT_BENCH_PROMPTS = {(False, 1): "single-v1", (False, 2): "single-v1-multi-turn",
                    (True, 1): "single-math-v1", (True, 2): "single-math-v1-multi-turn"}

KINDS = ("alpaca_logprob", "pairwise_tie", "arena", "single", "single_multi")
LOGPROB_FLOOR = -100.0  # log-probability given to a verdict token the judge rules out


class UnknownRequestError(JudgeError):
    """A request that matches none of the judge prompts the judge knows."""


def _format_pattern(template: str) -> str:
    """Regex of a ``str.format`` template: literal text escaped, each field a named group
    (a repeated field must repeat its text)."""
    out, seen = [], set()
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template field {name!r} is not a plain name")
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
    return "".join(out)


_REPLACE_FIELD = re.compile(r"{([^ \s]+?)}")  # alpaca_eval.utils.make_prompts' placeholder pattern


def _replace_pattern(template: str) -> str:
    """Regex of a template filled the way ``alpaca_eval.utils.make_prompts`` fills it: the first
    ``{name}`` of each name is replaced, any later one stays as written."""
    out, seen, pos = [], set(), 0
    for m in _REPLACE_FIELD.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        if name in seen or not name.isidentifier():
            out.append(re.escape(m.group(0)))
        else:
            out.append(f"(?P<{name}>.*?)")
            seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


@dataclass(frozen=True)
class RequestForm:
    """One judge prompt: its messages' roles and templates, and what kind of verdict it asks for.

    ``style`` says how the benchmark fills the templates: ``format`` (``str.format``: Arena-Hard,
    MT-Bench) or ``replace`` (plain ``{name}`` replacement: AlpacaEval, our pairwise prompt).
    ``tokens`` are the AlpacaEval verdict tokens (first output, second output).
    A request matches when its first messages have these roles and fill these templates (later
    messages, such as Arena-Hard's "continue your judgment" turn, are allowed).
    """

    name: str
    kind: str
    messages: tuple[tuple[str, str], ...]
    style: str = "format"
    tokens: tuple[str, str] = ("m", "M")
    _patterns: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown form kind {self.kind!r}; choose from {KINDS}")
        if self.style not in ("format", "replace"):
            raise ValueError(f"style must be 'format' or 'replace', got {self.style!r}")
        to_regex = _format_pattern if self.style == "format" else _replace_pattern
        pats = tuple((role, re.compile(to_regex(text), re.DOTALL)) for role, text in self.messages)
        object.__setattr__(self, "_patterns", pats)

    def match(self, messages: Messages) -> Optional[dict[str, str]]:
        """The filled-in fields, or None if ``messages`` were not made from this form."""
        if len(messages) < len(self._patterns):
            return None
        fields: dict[str, str] = {}
        for (role, pattern), msg in zip(self._patterns, messages):
            if msg.get("role") != role:
                return None
            m = pattern.fullmatch(str(msg.get("content", "")))
            if m is None:
                return None
            for k, v in m.groupdict().items():
                if fields.setdefault(k, v) != v:
                    return None
        return fields

    def conversations(self, fields: Mapping[str, str]) -> list[list[dict]]:
        """The conversation(s) the verdict is about, as user/assistant messages (the response
        being judged is the last assistant message of each)."""
        def conv(*turns: str) -> list[dict]:
            return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]

        if self.kind in ("alpaca_logprob", "pairwise_tie"):
            return [conv(fields["instruction"], fields["output_1"]), conv(fields["instruction"], fields["output_2"])]
        if self.kind == "arena":
            questions = [fields[k] for k in sorted((k for k in fields if re.fullmatch(r"question_\d+", k)),
                                                   key=lambda k: int(k.split("_")[1]))]
            n = len(questions)
            a = [fields[f"answer_{i + 1}"] for i in range(n)]
            b = [fields[f"answer_{i + 1 + n}"] for i in range(n)]
            return [conv(*[t for pair in zip(questions, a) for t in pair]),
                    conv(*[t for pair in zip(questions, b) for t in pair])]
        if self.kind == "single":
            return [conv(fields["question"], fields["answer"])]
        return [conv(fields["question_1"], fields["answer_1"], fields["question_2"], fields["answer_2"])]


class JudgePrompts:
    """The forms a scoring judge understands; benchmark runners add theirs before judging."""

    def __init__(self, forms: Sequence[RequestForm] = ()):
        self._forms: dict[tuple, RequestForm] = {}  # (name, messages): the toy and real prompts can share names
        self._lock = threading.Lock()
        for f in forms:
            self.add(f)

    def add(self, form: RequestForm) -> RequestForm:
        with self._lock:
            self._forms[(form.name, form.messages)] = form
        return form

    def __len__(self) -> int:
        return len(self._forms)

    def __contains__(self, name: str) -> bool:
        return any(n == name for n, _ in self._forms)

    def names(self) -> list[str]:
        return sorted({n for n, _ in self._forms})

    def match(self, messages: Messages) -> tuple[RequestForm, dict[str, str]]:
        with self._lock:
            forms = list(self._forms.values())
        for form in forms:
            fields = form.match(messages)
            if fields is not None:
                return form, fields
        first = str(messages[-1].get("content", ""))[:120] if messages else ""
        raise UnknownRequestError(f"the request matches none of the judge prompts this judge knows "
                                  f"({', '.join(self.names()) or 'none registered'}); last message starts "
                                  f"{first!r}")

    # ---- the benchmarks' prompts -------------------------------------------------------------
    def add_alpaca_annotator(self, spec) -> RequestForm:
        """AlpacaEval's annotator prompt (an ``AnnotatorSpec``), split into chat messages as
        ``alpaca_eval.utils.prompt_to_chatml`` splits it."""
        import warnings

        with warnings.catch_warnings():  # imported when first needed: alpaca_eval is slow to import and warns
            warnings.simplefilter("ignore")
            from alpaca_eval.utils import prompt_to_chatml

        msgs = prompt_to_chatml(spec.prompt_template)
        second = [t for t in spec.denominator_tokens if t != spec.numerator_token]
        if len(second) != 1:
            raise ValueError(f"annotator {spec.name!r}: expected two verdict tokens, got {spec.denominator_tokens}")
        return self.add(RequestForm(f"alpaca_eval/{spec.name}", "alpaca_logprob",
                                    tuple((m["role"], m["content"]) for m in msgs), style="replace",
                                    tokens=(spec.numerator_token, second[0])))

    def add_pairwise(self, template: str, name: str = "pairwise_preference") -> RequestForm:
        return self.add(RequestForm(name, "pairwise_tie", (("user", template),), style="replace"))

    def add_arena(self, config) -> RequestForm:
        """Arena-Hard's judge prompt (an ``ArenaJudgeConfig``)."""
        msgs = (("system", config.system_prompt), *(("user", t) for t in config.prompt_template))
        return self.add(RequestForm(f"arena_hard/{config.judge_model}", "arena", msgs))

    def add_mt_bench(self, prompts: Mapping[str, dict]) -> list[RequestForm]:
        """FastChat's single-answer grading prompts (name -> ``{system_prompt, prompt_template}``)."""
        out = []
        for (_, turn), name in MT_BENCH_PROMPTS.items():
            p = prompts[name]
            out.append(self.add(RequestForm(f"mt_bench/{name}", "single" if turn == 1 else "single_multi",
                                            (("system", p["system_prompt"]), ("user", p["prompt_template"])))))
        return out


class ScoringJudge:
    """Base of judges that score conversations and write the verdicts themselves.

    Subclasses implement :meth:`rewards` (one number per conversation, higher is better) and may
    change :meth:`grade` (reward -> 1-10) and :meth:`first_better_probability`. Verdicts:
    a difference of at most ``tie_margin`` is a tie, at least ``strong_margin`` a strong win
    (Arena-Hard's ``>>``). Replies go to the on-disk ``cache`` (keyed by judge and request, like an
    HTTP judge's) when one is given.
    """

    model: str = "scoring-judge"

    def __init__(self, forms: Optional[JudgePrompts] = None, *, strong_margin: float, tie_margin: float,
                 cache: "JudgeCache | str | None" = None):
        if strong_margin <= tie_margin:
            raise ValueError(f"strong_margin ({strong_margin}) must exceed tie_margin ({tie_margin})")
        self.forms = forms if forms is not None else JudgePrompts()
        self.strong_margin = float(strong_margin)
        self.tie_margin = float(tie_margin)
        self.cache = JudgeCache(cache) if isinstance(cache, str) else cache
        self.calls = 0        # requests answered by scoring (not from the cache)
        self.cache_hits = 0
        self._lock = threading.Lock()

    # ---- what subclasses define --------------------------------------------------------------
    def rewards(self, conversations: list[list[dict]]) -> list[float]:
        raise NotImplementedError

    def grade(self, reward: float) -> float:
        """A 1-10 grade from a reward (MT-Bench's single-answer scale)."""
        raise NotImplementedError

    def first_better_probability(self, r1: float, r2: float) -> float:
        """Probability that the first response is the better one (AlpacaEval's log-probabilities)."""
        d = r1 - r2
        return 0.5 if abs(d) <= self.tie_margin else (1.0 if d > 0 else 0.0)

    # ---- verdicts ----------------------------------------------------------------------------
    def comparison(self, r1: float, r2: float) -> int:
        """+2/+1: the first is much/slightly better; 0 a tie; -1/-2 the second."""
        d = r1 - r2
        if abs(d) <= self.tie_margin:
            return 0
        return (2 if abs(d) >= self.strong_margin else 1) * (1 if d > 0 else -1)

    def verdict(self, form: RequestForm, rewards: list[float]) -> JudgeReply:
        if form.kind == "alpaca_logprob":
            p = self.first_better_probability(*rewards)
            lp = [max(LOGPROB_FLOOR, math.log(x)) if x > 0 else LOGPROB_FLOOR for x in (p, 1.0 - p)]
            alts = sorted(({"token": t, "logprob": v} for t, v in zip(form.tokens, lp)), key=lambda a: -a["logprob"])
            return JudgeReply(text=alts[0]["token"], top_logprobs=[alts])
        if form.kind == "pairwise_tie":
            c = self.comparison(*rewards)
            label = "tie" if c == 0 else ("1" if c > 0 else "2")
            return JudgeReply(text=f"Response 1 scores {rewards[0]:.3f} and response 2 scores {rewards[1]:.3f}.\n"
                                   f"[[{label}]]")
        if form.kind == "arena":
            label = {2: "A>>B", 1: "A>B", 0: "A=B", -1: "B>A", -2: "B>>A"}[self.comparison(*rewards)]
            return JudgeReply(text=f"Assistant A scores {rewards[0]:.3f} and assistant B scores {rewards[1]:.3f}.\n\n"
                                   f"My final verdict is: [[{label}]]")
        g = min(10.0, max(1.0, self.grade(rewards[0])))
        return JudgeReply(text=f"The answer scores {rewards[0]:.3f}.\n\nRating: [[{g:.1f}]]")

    # ---- the Judge protocol ------------------------------------------------------------------
    def complete(self, messages: Messages, *, temperature: float, max_tokens: int, logprobs: bool = False,
                 top_logprobs: Optional[int] = None) -> JudgeReply:
        req = make_request(messages, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs,
                           top_logprobs=top_logprobs)
        return self._answer([req])[0]

    def complete_many(self, requests: Sequence[dict], *, validate: Optional[Validator] = None
                      ) -> list[Optional[JudgeReply]]:
        """Answer a batch (conversations scored together); a reply ``validate`` rejects is None."""
        replies = self._answer([make_request(**r) for r in requests])
        return [r if validate is None or validate(r) else None for r in replies]

    def _answer(self, requests: list[dict]) -> list[JudgeReply]:
        out: list[Optional[JudgeReply]] = [None] * len(requests)
        todo, convs = [], []
        for i, req in enumerate(requests):
            hit = self.cache.get(self.model, req) if self.cache is not None else None
            if hit is not None:
                out[i] = JudgeReply.from_dict(hit, cached=True)
                with self._lock:
                    self.cache_hits += 1
                continue
            form, fields = self.forms.match(req["messages"])
            cs = form.conversations(fields)
            todo.append((i, form, len(convs), len(cs)))
            convs.extend(cs)
        scores = self.rewards(convs) if convs else []
        for i, form, start, n in todo:
            reply = self.verdict(form, [float(s) for s in scores[start:start + n]])
            if self.cache is not None:
                self.cache.put(self.model, requests[i], reply.to_dict())
            out[i] = reply
        with self._lock:
            self.calls += len(todo)
        return out  # type: ignore[return-value]

    def answer_body(self, body: dict) -> dict:
        """Answer a chat-completions request body (the callback of :class:`FakeJudgeServer`)."""
        reply = self.complete(body.get("messages", []), temperature=body.get("temperature", 1.0),
                              max_tokens=body.get("max_tokens") or 1, logprobs=bool(body.get("logprobs")),
                              top_logprobs=body.get("top_logprobs"))
        top = None
        if reply.top_logprobs is not None:
            top = [[(a["token"], a["logprob"]) for a in alts] for alts in reply.top_logprobs]
        return {"text": reply.text, "top_logprobs": top}

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
