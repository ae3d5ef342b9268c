"""PAD's multiple-choice (MCQ) calibration of the teacher's scores (Li et al., 2025, arXiv 2502.14272,
§3 "reward calibration"; code EganGu/PAD).

For each prompt with responses y_1..y_n, the teacher is asked, for every ordered pair (i, j) with
i ≠ j, which of two responses answers the instruction better — y_i shown first and y_j second,
then the other way round (both orders, so a preference for a position cancels out). Its answer
probabilities are read at the first token of the two answers and normalised over the two:
P(first) + P(second) = 1. Response i's mean selection probability p̄_i is the mean of its
probabilities over the 2(n − 1) questions it appears in; the calibrated teacher score is
``distill.losses.pad.calibrate_teacher_scores``: s^T_i ← (1 − λ) s^T_i + λ log p̄_i.

What the released code fixes, and what is ours:
* the combination, ``scores = scores_avglogp · alpha + scores_mcq · (1 − alpha)`` (λ = 1 − alpha),
  with ``scores_mcq`` a log-probability (``SimPOTrainer.get_batch_loss_metrics``, which
  ``scripts/run_pad.py`` trains with); the released config ``training_configs/gemma-2-2b-it-pd.yaml``
  sets ``alpha: 0.0`` — the MCQ scores alone, λ = 1 — and its LVPD (``loss_type: rd``) ranks by the
  MCQ scores alone whatever alpha is;
* ``scripts/run_pad.py`` keeps a prompt only if some response has p̄ > 0.5 and some has p̄ ≤ 0.5
  (``method.calibration_filter``). With probabilities normalised over the two answers, p̄ averages
  to ½ over a prompt's responses, so this drops only prompts whose responses all tie at ½;
* the MCQ scores come from ``data_gen/gen/prob.py`` (called with ``--num_options N``), whose source is
  not in the public repository snapshot we could read: the question's wording below is ours,
  following the paper's description (two responses, both orders, mean selection probability).

Two formats: ``natural`` (the full world: an English question, answers ``A``/``B``) and ``toy`` (the
toy world's vocabulary has no such words: the instruction and the two responses separated by the
otherwise unused word ``system``, answers ``a``/``b``; the toy teachers learn it from
``ToyTask.comparison_rows``).
"""
from __future__ import annotations

import logging

import torch

from distill import data as D
from distill.progress import Tracker
from toyworld.task import SEPARATOR, toy_comparison  # noqa: F401 - SEPARATOR: the word the toy question splits on

log = logging.getLogger(__name__)

ANSWERS = {"toy": ("a", "b"), "natural": ("A", "B")}

NATURAL = ("Which of the two responses below answers the instruction better?\n\n"
           "### Instruction:\n{instruction}\n\n### Response A:\n{a}\n\n### Response B:\n{b}\n\n"
           "Answer with a single letter: A or B.")


def instruction_text(prompt: list[dict]) -> str:
    """The instruction a comparison quotes: the user turn, or the whole conversation as
    ``role: content`` lines when there are several turns."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def comparison_messages(prompt: list[dict], a: str, b: str, style: str) -> list[dict]:
    """The chat messages that ask which of ``a`` (first) and ``b`` (second) answers ``prompt`` better."""
    if style == "toy":
        return [{"role": "user", "content": toy_comparison(instruction_text(prompt), a, b)}]
    if style == "natural":
        return [{"role": "user", "content": NATURAL.format(instruction=instruction_text(prompt), a=a, b=b)}]
    raise ValueError(f"unknown comparison format {style!r}; choose from {sorted(ANSWERS)}")


def answer_ids(tokenizer, style: str) -> tuple[int, int]:
    """First token of each answer, as the tokenizer writes an answer (``encode_response``)."""
    out = []
    for word in ANSWERS[style]:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids or ids[0] == tokenizer.unk_token_id:
            raise ValueError(f"the teacher's tokenizer cannot write the answer {word!r} of the {style!r} comparison "
                             "format; PAD's MCQ calibration needs it (set method.calibration_lambda=0)")
        out.append(ids[0])
    if out[0] == out[1]:
        raise ValueError(f"the answers {ANSWERS[style]} start with the same token for this tokenizer; the MCQ "
                         "calibration cannot tell them apart (set method.calibration_lambda=0)")
    return out[0], out[1]


def _fit(tokenizer, prompt: list[dict], a: str, b: str, style: str, limit: int) -> tuple[list[int], bool]:
    """Token ids of the question; responses cut (each keeping its start) to fit ``limit`` tokens."""
    ids = D.encode_prompt(tokenizer, comparison_messages(prompt, a, b, style))
    if len(ids) <= limit:
        return ids, False
    ta, tb = (tokenizer(x, add_special_tokens=False)["input_ids"] for x in (a, b))
    over = len(ids) - limit
    keep = max(1, (len(ta) + len(tb) - over) // 2)
    a, b = (tokenizer.decode(t[:keep]) for t in (ta, tb))
    return D.encode_prompt(tokenizer, comparison_messages(prompt, a, b, style))[-limit:], True


@torch.no_grad()
def mean_selection_probabilities(model, tokenizer, rows: list[dict], *, style: str, batch_size: int,
                                 max_length: int, desc: str = "MCQ calibration") -> list[list[float]]:
    """p̄ of every response of every row (``{"prompt": messages, "responses": [str, ...]}``).

    Every ordered pair (i, j), i ≠ j, is one question with y_i first; the probabilities of the two
    answers' first tokens after the generation prompt, normalised over the two, go to y_i (first)
    and y_j (second). p̄_i is the mean over the 2(n − 1) questions y_i appears in.
    """
    first, second = answer_ids(tokenizer, style)
    questions, cut = [], 0
    for r, row in enumerate(rows):
        resp = row["responses"]
        if len(resp) < 2:
            raise ValueError(f"row {r}: the MCQ calibration compares responses, got {len(resp)}")
        for i in range(len(resp)):
            for j in range(len(resp)):
                if i != j:
                    ids, was_cut = _fit(tokenizer, row["prompt"], resp[i], resp[j], style, max_length)
                    cut += was_cut
                    questions.append((r, i, j, ids))
    if cut:
        log.warning("MCQ calibration: %d of %d questions cut to %d tokens (each response keeps its start)",
                    cut, len(questions), max_length)
    model.eval()
    device = next(model.parameters()).device
    total = [[0.0] * len(row["responses"]) for row in rows]
    count = [[0] * len(row["responses"]) for row in rows]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with Tracker(desc, total=len(questions), unit="questions") as bar:
        for start in range(0, len(questions), batch_size):
            chunk = questions[start:start + batch_size]
            ids = D.pad([q[3] for q in chunk], pad_id, left=True).to(device)
            attn = D.pad([[1] * len(q[3]) for q in chunk], 0, left=True).to(device)
            pos = (attn.cumsum(-1) - 1).clamp_min(0)  # left padding: each question starts at position 0
            logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits[:, -1].float()
            p_first = torch.softmax(logits[:, [first, second]], dim=-1)[:, 0].tolist()
            for (r, i, j, _), p in zip(chunk, p_first):
                total[r][i] += p
                total[r][j] += 1.0 - p
                count[r][i] += 1
                count[r][j] += 1
            bar.advance(len(chunk))
    return [[t / c for t, c in zip(ts, cs)] for ts, cs in zip(total, count)]


def keep_decided(p_bar: list[float]) -> bool:
    """The released code's filter (``scripts/run_pad.py``): some response has p̄ > 0.5 and some has
    p̄ ≤ 0.5."""
    return any(p > 0.5 for p in p_bar) and any(p <= 0.5 for p in p_bar)
