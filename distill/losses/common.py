"""Log-probabilities and the supervised (NLL) term shared by every loss.

Convention of the whole package: tensors arrive ALREADY SHIFTED. ``logits[b, t]`` is the
distribution that predicts ``labels[b, t]``; ``mask[b, t]`` is 1 (or True) on response tokens and
0 on prompt and padding. No function here shifts anything.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def check_btv(logits: Tensor, mask: Tensor, name: str = "logits") -> None:
    """Raise ValueError unless ``logits`` is [B, T, V] and ``mask`` is [B, T]."""
    if logits.dim() != 3:
        raise ValueError(f"{name} must be [batch, time, vocab], got shape {tuple(logits.shape)}")
    if tuple(mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"mask must be [batch, time] = {tuple(logits.shape[:2])} to match {name}, "
                         f"got {tuple(mask.shape)}; pass the mask of the same (shifted) sequences")


def masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    """Σ_t over positions where ``mask`` is set, per row: [B, T] -> [B].

    Uses ``where`` rather than a product, so whatever sits at masked positions (even inf/nan)
    never reaches the result.
    """
    return torch.where(mask.bool(), values, torch.zeros_like(values)).sum(-1)


def masked_seq_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence mean over response tokens, (1/|y_b|) Σ_t values[b, t]: [B, T] -> [B].

    A row with no response token gives 0 (its length is clamped to 1).
    """
    lengths = mask.bool().sum(-1).clamp_min(1).to(values.dtype)
    return masked_sum(values, mask) / lengths


def centred(logits: Tensor) -> Tensor:
    """float32 logits minus their (constant, detached) maximum over the vocabulary.

    Log-probabilities are shift-invariant, but a difference of two logsumexps of huge logits
    (|z| ~ 1e4, float32 spacing ~1e-3 there) loses precision to the rounding of each absolute
    value; after centring every logsumexp is O(log V) and every logit difference exact.
    """
    z = logits.float()
    return z - z.amax(dim=-1, keepdim=True).detach()


def token_logps(logits: Tensor, labels: Tensor) -> Tensor:
    """log π(labels[b, t] | s_t) for every position: [B, T, V], [B, T] -> [B, T] (float32).

    log π(y_t|s_t) = z_t[y_t] − logsumexp(z_t). Labels are clamped into [0, V−1] so that
    masked positions may hold -100 or any id; the values there are meaningless and must be
    masked by the caller.
    """
    if logits.dim() != 3 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"token_logps needs logits [B,T,V] and labels [B,T]; got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return label_logps(log_probs(logits), labels)


def log_probs(logits: Tensor) -> Tensor:
    """log π(·|s_t) = z_t − logsumexp(z_t) over the vocabulary, float32: [..., V] -> [..., V].

    One fused pass (``log_softmax`` subtracts the row maximum inside, so every entry keeps full
    precision however large the logits); losses that read several quantities of the same rows
    (NLL, top-k KL, mass outside the top-k) compute it once and share it.
    """
    return torch.log_softmax(logits.float(), dim=-1)


def label_logps(logps: Tensor, labels: Tensor) -> Tensor:
    """log π(labels[b, t] | s_t) read from log-probabilities [B, T, V] (``log_probs``): -> [B, T].
    Labels are clamped into [0, V−1]; masked positions must be masked by the caller."""
    ids = labels.long().clamp(0, logps.shape[-1] - 1).unsqueeze(-1)
    return logps.gather(-1, ids).squeeze(-1)


def sequence_logps(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """log π(y|x) = Σ_t mask_t · log π(y_t|s_t), summed over response tokens only: -> [B].

    Source: the notation of both papers (log-likelihood of the response, prompt and padding
    masked); the same sum the DPO loss and PAD's intrinsic reward start from.
    """
    check_btv(logits, mask)
    return masked_sum(token_logps(logits, labels), mask)


def masked_mean_nll(logits: Tensor, labels: Tensor, mask: Tensor, reduction: str = "token",
                    logps: Tensor | None = None, label_lp: Tensor | None = None) -> Tensor:
    """Supervised term NLL_θ(y|x) on the response tokens: -> scalar.

    reduction="token" (default): −(Σ_b Σ_t m_bt log π(y_bt|s_bt)) / (Σ_b Σ_t m_bt), the mean over
      every response token of the batch, so long responses weigh more. This is what the ADPA
      reference code does for its SFT term (``F.cross_entropy(..., ignore_index=-100)`` over the
      flattened chosen tokens, weighted by ``sft_on_chosen``, in ``DistillTrainer`` of
      ``scripts/run_distill_dpo.py``) and what ordinary SFT does.
    reduction="sequence": mean over sequences of the per-sequence mean NLL, (1/B) Σ_b (1/|y_b|) Σ_t.

    ``logps``: the rows' ``log_probs(logits)`` when the caller already has them (one pass over the
    vocabulary shared with another term); ``logits`` then only gives the shape. ``label_lp``: the
    log-probabilities of the labels themselves, [B, T] (``label_logps``), when the caller has them.

    Source: ADPA/DCKD papers (Gao et al., ICLR 2025, §3), the NLL term on y_w.
    """
    check_btv(logits, mask)
    if label_lp is not None:
        nll = -label_lp
    else:
        nll = -(token_logps(logits, labels) if logps is None else label_logps(logps, labels))
    if reduction == "token":
        return masked_sum(nll, mask).sum() / mask.bool().sum().clamp_min(1)
    if reduction == "sequence":
        return masked_seq_mean(nll, mask).mean()
    raise ValueError(f"reduction must be 'token' or 'sequence', got {reduction!r}")


def log_mass_outside_logps(logps: Tensor, ids: Tensor) -> Tensor:
    """``log_mass_outside`` from log-probabilities [B, T, V] (``log_probs``) instead of logits:
    log m_rest = logsumexp_{a ∉ ids} log π(a|s_t), the same value without another pass to normalise."""
    return torch.logsumexp(logps.scatter(-1, ids.long(), float("-inf")), dim=-1)


class _GatherMassOutside(torch.autograd.Function):
    """Forward: ``logps`` at ``ids`` (and at ``labels``), and logsumexp over the entries not in ``ids``,
    computed as ``torch.logsumexp`` does (shift by the row maximum, exp, sum, log). Backward: one
    pass over [N, V] — the shifted exponentials kept from the forward (0 at ``ids``) times the
    rest bin's gradient over their sum — into which the gathered entries' gradients are added in
    place. Autograd over ``gather`` + ``scatter`` + ``logsumexp`` makes a zero-filled [N, V] tensor
    for each gather, recomputes the exponentials, clones for the scatter and adds the three."""

    @staticmethod
    def forward(ctx, logps: Tensor, ids: Tensor, labels: Tensor | None):
        at_ids = logps.gather(-1, ids)
        at_labels = logps.gather(-1, labels) if labels is not None else None
        e = logps.scatter(-1, ids, float("-inf"))
        m = e.amax(-1, keepdim=True)
        m.masked_fill_(m.abs() == float("inf"), 0.0)  # as torch.logsumexp: a row of -inf gives -inf
        e.sub_(m).exp_()
        total = e.sum(-1, keepdim=True)
        rest = (total.log() + m).squeeze(-1)
        ctx.save_for_backward(e, total, ids, labels)
        return (at_ids, rest) if labels is None else (at_ids, rest, at_labels)

    @staticmethod
    def backward(ctx, g_ids, g_rest, g_labels=None):
        e, total, ids, labels = ctx.saved_tensors
        grad = e * (g_rest.unsqueeze(-1) / total) if g_rest is not None else torch.zeros_like(e)
        if g_ids is not None:
            grad.scatter_add_(-1, ids, g_ids)
        if labels is not None and g_labels is not None:
            grad.scatter_add_(-1, labels, g_labels)
        return grad, None, None


def gather_mass_outside(logps: Tensor, ids: Tensor, labels: Tensor | None = None):
    """From log-probabilities [B, T, V] (``log_probs``): ``logps`` at ``ids`` [B, T, K], the log mass
    outside ``ids`` (``log_mass_outside_logps``: logsumexp_{a ∉ ids} log π(a|s_t)) [B, T], and with
    ``labels`` [B, T] also ``label_logps(logps, labels)``: ``(at_ids, log_rest[, at_labels])``.

    The same values as ``logps.gather(-1, ids)``, ``log_mass_outside_logps`` and ``label_logps``
    (``tests/test_losses_dckd.py`` compares them, gradients included, to float32 rounding) at fewer
    passes over the vocabulary (:class:`_GatherMassOutside`). ``ids`` must not repeat within a
    position; ``labels`` may be any id (they are clamped into [0, V−1] as in ``label_logps``)."""
    ids = ids.long()
    if labels is None:
        return _GatherMassOutside.apply(logps, ids, None)
    lab = labels.long().clamp(0, logps.shape[-1] - 1).unsqueeze(-1)
    at_ids, rest, at_labels = _GatherMassOutside.apply(logps, ids, lab)
    return at_ids, rest, at_labels.squeeze(-1)


def log_mass_outside(logits: Tensor, ids: Tensor) -> Tensor:
    """log Σ_{a ∉ ids} π(a|s_t): the log-probability mass outside ``ids``, exactly: [B, T, V], [B, T, K] -> [B, T].

        log m_rest = logsumexp_{a ∉ ids}(z_a) − logsumexp_a(z_a)

    Both terms are computed from the logits, so the result keeps full relative precision however
    small the mass is (down to the smallest float32 normal, ~1e-38). ``1 − Σ_{a ∈ ids} π(a)`` would
    cancel catastrophically once the mass drops below the float32 epsilon (~1e-7) and lose its
    gradient. ``ids`` must not contain duplicates; when they cover the whole vocabulary the result
    is −inf (no mass outside). Any float dtype in, float32 out; differentiable in ``logits``.
    """
    if logits.dim() != 3 or ids.dim() != 3 or tuple(ids.shape[:2]) != tuple(logits.shape[:2]):
        raise ValueError(f"log_mass_outside needs logits [B,T,V] and ids [B,T,K]; got {tuple(logits.shape)} "
                         f"and {tuple(ids.shape)}")
    z = centred(logits)
    rest = z.scatter(-1, ids.long(), float("-inf"))
    return torch.logsumexp(rest, dim=-1) - torch.logsumexp(z, dim=-1)


def check_sequence_inputs(method: str, first: str, value: Tensor, **others: Tensor) -> None:
    """A pairwise preference loss's inputs: ``value`` (named ``first``) of shape [batch] and every
    tensor of ``others`` of the same shape (a ValueError naming the input and ``method`` otherwise)."""
    shape = tuple(value.shape)
    for name, t in others.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape} like {first}")
    if len(shape) != 1:
        raise ValueError(f"{method} inputs must be [batch] sequence log-probs, got shape {shape}")


def reward_metrics(chosen: Tensor, rejected: Tensor) -> dict[str, Tensor]:
    """Batch means of a pairwise loss's implicit rewards (detached): ``rewards/chosen`` = r_w,
    ``rewards/rejected`` = r_l, ``rewards/accuracy`` = fraction with r_w > r_l, ``rewards/margin``."""
    c, r = chosen.detach(), rejected.detach()
    return {"rewards/chosen": c.mean(), "rewards/rejected": r.mean(), "rewards/accuracy": (c > r).float().mean(),
            "rewards/margin": (c - r).mean()}
