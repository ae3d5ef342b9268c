"""A synthetic instruction-following task whose response quality an oracle scores exactly.

Each instruction asks for an operation on a short list of letters, e.g. ``sort : d b a c``.
A response has two quality components:

* **correctness** — how close the list in the response is to the true answer:
  ``1 − Levenshtein(pred, target) / len(target)`` on the token lists, floored at 0;
* **format** — whether the list is wrapped in brackets (``[ a b c d ]``).

``reward = w_correct · correctness + w_format · format`` lies in [0, 1]; with the default weights
(0.9, 0.1) one wrong letter costs more than the format (a list has at most 8 letters), so the format
decides between two equally correct answers. The oracle stands in for the GPT-4 judge (pairwise
verdicts) and for the reward model.

The data are made so that, as in the real setting, an aligned teacher knows more than the
preference pairs show:

* the instruction data is correct, bracketed in ``sft_format_share`` (35%) of the answers, so a
  model trained on it answers greedily in the plain format;
* a preference pair is two candidate answers, each correct with probability ``pair_correct_share``
  and bracketed with probability ``pair_format_share``, the better one chosen by the oracle: the
  chosen responses are better than the rejected ones but not gold (wrong in about a quarter of the
  pairs, plain in about half). Imitating them teaches their mistakes; a teacher aligned on the
  contrast (DPO) answers correctly and in brackets, beyond what the chosen responses show.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from rapidfuzz.distance import Levenshtein

SEPARATOR = "system"  # a word of the toy vocabulary that no task text uses


def toy_comparison(instruction: str, a: str, b: str) -> str:
    """The toy world's comparison question (one user turn; PAD's calibration asks it, ``distill.mcq``)."""
    return f"{instruction} {SEPARATOR} {a} {SEPARATOR} {b}"

OPS = ("sort", "reverse", "shift")


@dataclass(frozen=True)
class ToyTaskConfig:
    """Parameters of the toy task.

    Attributes:
        alphabet_size: number of distinct letters (2–26).
        min_len, max_len: length range of the input list.
        ops: operations to draw from (``sort``, ``reverse``, ``shift`` = each letter to the next one).
        w_correct, w_format: oracle weights; they must sum to 1.
        sft_format_share: share of instruction-data answers in the bracketed format. Below 0.5, a
            model trained on it answers greedily in the plain format: only alignment changes that.
    """

    alphabet_size: int = 12
    min_len: int = 3
    max_len: int = 8
    ops: tuple[str, ...] = OPS
    w_correct: float = 0.9
    w_format: float = 0.1
    sft_format_share: float = 0.35
    pair_correct_share: float = 0.5
    pair_format_share: float = 0.35

    def __post_init__(self):
        if not 2 <= self.alphabet_size <= 26:
            raise ValueError(f"alphabet_size must be in [2, 26], got {self.alphabet_size}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops:
            raise ValueError(f"unknown ops {bad}; choose from {list(OPS)}")
        if abs(self.w_correct + self.w_format - 1.0) > 1e-9 or min(self.w_correct, self.w_format) < 0:
            raise ValueError("w_correct and w_format must be non-negative and sum to 1")
        for key in ("sft_format_share", "pair_correct_share", "pair_format_share"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.pair_correct_share == 1.0 and self.pair_format_share in (0.0, 1.0):
            raise ValueError("pair_correct_share = 1 with pair_format_share 0 or 1 makes every pair a tie; lower "
                             "pair_correct_share or set pair_format_share strictly between 0 and 1")

    @property
    def letters(self) -> list[str]:
        return [chr(ord("a") + i) for i in range(self.alphabet_size)]


def solve(op: str, items: list[str], letters: list[str]) -> list[str]:
    """The exact answer of an operation."""
    if op == "sort":
        return sorted(items)
    if op == "reverse":
        return items[::-1]
    if op == "shift":
        return [letters[(letters.index(c) + 1) % len(letters)] for c in items]
    raise ValueError(f"unknown op {op!r}")


def render(items: list[str], bracketed: bool) -> str:
    """A response text in one of the two formats."""
    body = " ".join(items)
    return f"[ {body} ]" if bracketed else body


def parse(response: str) -> tuple[list[str], bool]:
    """Split a response into its list of tokens and whether it uses the bracketed format."""
    toks = response.split()
    bracketed = len(toks) >= 2 and toks[0] == "[" and toks[-1] == "]"
    if bracketed:
        toks = toks[1:-1]
    return [t for t in toks if t not in ("[", "]")], bracketed


@dataclass
class Problem:
    op: str
    items: list[str]
    answer: list[str] = field(default_factory=list)

    @property
    def instruction(self) -> str:
        return f"{self.op} : {' '.join(self.items)}"

    def to_dict(self) -> dict:
        return asdict(self)


class ToyTask:
    """Samples problems, builds the data sets, and scores responses exactly (the oracle)."""

    def __init__(self, cfg: ToyTaskConfig | None = None, **kwargs):
        self.cfg = cfg or ToyTaskConfig(**{k: tuple(v) if k == "ops" else v for k, v in kwargs.items()})
        self.letters = self.cfg.letters

    # ----------------------------------------------------------------- sampling
    def sample(self, rng: random.Random) -> Problem:
        op = rng.choice(self.cfg.ops)
        n = rng.randint(self.cfg.min_len, self.cfg.max_len)
        items = [rng.choice(self.letters) for _ in range(n)]
        return Problem(op, items, solve(op, items, self.letters))

    def corrupt(self, answer: list[str], rng: random.Random) -> list[str]:
        """A plausible wrong answer: one or two edits (substitute, drop, or swap)."""
        out = list(answer)
        for _ in range(rng.randint(1, 2)):
            kind = rng.choice(("sub", "drop", "swap")) if len(out) > 1 else "sub"
            i = rng.randrange(len(out))
            if kind == "sub":
                out[i] = rng.choice([c for c in self.letters if c != out[i]])
            elif kind == "drop":
                out.pop(i)
            else:
                j = rng.randrange(len(out))
                out[i], out[j] = out[j], out[i]
        return out if out != answer else out + [rng.choice(self.letters)]

    # ----------------------------------------------------------------- the oracle
    def correctness(self, response: str, answer: list[str]) -> float:
        pred, _ = parse(response)
        return max(0.0, 1.0 - Levenshtein.distance(pred, answer) / max(len(answer), 1))

    def reward(self, response: str, answer: list[str]) -> float:
        """Oracle reward in [0, 1]: ``w_correct · correctness + w_format · [bracketed]``."""
        _, bracketed = parse(response)
        return self.cfg.w_correct * self.correctness(response, answer) + self.cfg.w_format * float(bracketed)

    def judge(self, response_a: str, response_b: str, answer: list[str]) -> float:
        """Pairwise verdict: 1.0 if A is better, 0.0 if B is better, 0.5 for a tie."""
        ra, rb = self.reward(response_a, answer), self.reward(response_b, answer)
        return 0.5 if abs(ra - rb) < 1e-9 else float(ra > rb)

    # ----------------------------------------------------------------- data sets
    def sft_rows(self, n: int, rng: random.Random) -> list[dict]:
        """Instruction data: correct answers, bracketed with probability ``sft_format_share``."""
        rows = []
        for _ in range(n):
            p = self.sample(rng)
            rows.append({"messages": [{"role": "user", "content": p.instruction},
                                      {"role": "assistant", "content": render(p.answer, rng.random() < self.cfg.sft_format_share)}],
                         "answer": p.answer})
        return rows

    def preference_rows(self, n: int, rng: random.Random) -> list[dict]:
        """Preference pairs as annotators make them: two candidate responses, each correct with
        probability ``pair_correct_share`` (else one or two edits) and bracketed with probability
        ``pair_format_share``; the one with the higher oracle reward is chosen (a tie is drawn again).

        The chosen response is better than the rejected one, not gold: by default it is wrong in
        about a quarter of the pairs and plain in about half. A model that imitates the chosen
        responses learns their mistakes; a teacher aligned on the contrast learns more than they show.
        """
        rows = []
        while len(rows) < n:
            p = self.sample(rng)
            a, b = (self._candidate(p.answer, rng) for _ in range(2))
            ra, rb = self.reward(a, p.answer), self.reward(b, p.answer)
            if abs(ra - rb) < 1e-9:
                continue
            chosen, rejected = (a, b) if ra > rb else (b, a)
            rows.append({"prompt": [{"role": "user", "content": p.instruction}],
                         "chosen": chosen, "rejected": rejected, "answer": p.answer})
        return rows

    def _candidate(self, answer: list[str], rng: random.Random) -> str:
        out = answer if rng.random() < self.cfg.pair_correct_share else self.corrupt(answer, rng)
        return render(out, bracketed=rng.random() < self.cfg.pair_format_share)

    def prompt_rows(self, n: int, rng: random.Random) -> list[dict]:
        """Prompts with their answers (for on-policy sampling and for evaluation)."""
        rows = []
        for _ in range(n):
            p = self.sample(rng)
            rows.append({"prompt": [{"role": "user", "content": p.instruction}], "answer": p.answer})
        return rows

    def two_turn_rows(self, n: int, rng: random.Random) -> list[dict]:
        """Two-turn prompts: the second instruction applies a new operation to the first answer."""
        rows = []
        for _ in range(n):
            p = self.sample(rng)
            op2 = rng.choice(self.cfg.ops)
            rows.append({"turns": [p.instruction, f"{op2} : it"], "ops": [p.op, op2], "items": p.items,
                         "answers": [p.answer, solve(op2, p.answer, self.letters)]})
        return rows

    def comparison_rows(self, n: int, rng: random.Random) -> list[dict]:
        """The comparison format, as instruction data (``sft`` rows): the user shows an instruction
        and two responses, the assistant names the better one by the oracle (``a`` first, ``b``
        second; never a tie). Responses are correct or wrong (one to four edits), bracketed or plain,
        so that both the format and the correctness decide; each order is equally likely.

        The toy world's PAD calibration asks its teacher this question (``distill.mcq``), so the
        teacher must have learnt it: these rows join the teachers' instruction data when a run
        configures ``method.calibration_lambda > 0``.
        """
        rows = []
        while len(rows) < n:
            p = self.sample(rng)
            a, b = (self._variant(p.answer, rng) for _ in range(2))
            ra, rb = self.reward(a, p.answer), self.reward(b, p.answer)
            if abs(ra - rb) < 1e-9:
                continue
            rows.append({"messages": [{"role": "user", "content": toy_comparison(p.instruction, a, b)},
                                      {"role": "assistant", "content": "a" if ra > rb else "b"}],
                         "answer": p.answer})
        return rows

    def _variant(self, answer: list[str], rng: random.Random) -> str:
        out = list(answer)
        for _ in range(rng.choice((0, 0, 1, 2))):
            out = self.corrupt(out, rng)
        return render(out, bracketed=rng.random() < 0.5)

    def corpus(self) -> list[str]:
        """Every word the task can produce (for training a tokenizer)."""
        return list(self.cfg.ops) + self.letters + [":", "[", "]", "it"]
