"""The teacher cache: the teacher's top-k log-probabilities (and the remaining mass) at every
response token of a sequence set, computed once and reused by every run that needs them.

Layout of a cache artifact (flat over all response tokens, memory-mapped on read):
  ``ids.npy``      int32 [N_tokens, k]  the teacher's top-k token ids
  ``logps.npy``    fp16  [N_tokens, k]  their log-probabilities under the teacher
  ``rest.npy``     fp32  [N_tokens]     log of the teacher's mass outside its top-k, exact
                                        (logsumexp over the other logits − logsumexp over all)
  ``ref_logps.npy`` fp16 [N_tokens, k]  (optional) a second, reference teacher's log-probabilities
                                        at the same ids — ADPA's π_ref
  ``offsets.npy``  int64 [N_seq + 1]    row ranges of each sequence
For full logits the cost per token would be 4·V bytes; here it is k·(4 + 2 [+ 2]) + 4.
``rest.npy`` is the only source of the teacher's remaining mass (DCKD's rest bin): it is computed
from the teacher's float32 logits, so it stays exact when the mass is tiny, which 1 − Σ_k p over the
fp16 log-probs would not (cancellation, and fp16 rounding of each p).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from distill.data import IGNORE, scatter_rows, to_device  # noqa: F401 - scatter_rows: the cache's rows, placed
from distill.losses.common import log_mass_outside_logps
from distill.progress import Tracker

log = logging.getLogger(__name__)

# Version of the files' layout, part of every cache key: 2 = rest.npy holds the exact float32 log
# remaining mass (1 held an fp16 value derived from the fp16 top-k log-probs).
LAYOUT = 2


def template_fingerprint(tokenizer) -> str:
    """Hash of what makes two tokenizers interchangeable: vocabulary and chat template."""
    vocab = sorted(tokenizer.get_vocab().items())
    blob = repr((vocab, tokenizer.chat_template, tokenizer.eos_token, tokenizer.bos_token))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_same_vocabulary(teacher_tok, student_tok, teacher_name: str, student_name: str, method: str) -> None:
    """Token-level methods compare distributions id by id: the tokenizers must be identical."""
    if teacher_tok.get_vocab() != student_tok.get_vocab():
        raise ValueError(
            f"{method} needs the teacher and the student to share a vocabulary, but {teacher_name} "
            f"({len(teacher_tok)} tokens) and {student_name} ({len(student_tok)} tokens) differ. Use a "
            "teacher of the student's family (same tokenizer), or a sequence-level method (pad) that works "
            "across tokenizers.")
    if teacher_tok.chat_template != student_tok.chat_template:
        raise ValueError(
            f"{method}: {teacher_name} and {student_name} use different chat templates, so the cached "
            "teacher positions would not match the student's. Give both the same template "
            "(tokenizer.chat_template) before distilling.")


@torch.no_grad()
def build_topk_cache(out: Path, teacher, sequences: list[dict], collate, *, k: int, batch_size: int,
                     reference=None, desc: str = "teacher cache") -> None:
    """Write the cache of ``teacher`` (and ``reference``) over ``sequences`` (encoded examples with
    ``input_ids``/``labels``; response tokens are those with a label)."""
    from distill.methods.base import response_logits

    teacher.eval()
    if reference is not None:
        reference.eval()
    ids_l, logps_l, rest_l, ref_l, lengths = [], [], [], [], []
    device = next(teacher.parameters()).device
    with Tracker(desc, total=len(sequences), unit="seqs") as bar:
        for i in range(0, len(sequences), batch_size):
            batch = to_device(collate(sequences[i:i + batch_size]), device)
            # the LM head at response positions only; rows in the same order as over the shifted labels
            logits, _, mask, _ = response_logits(teacher, batch["input_ids"], batch["attention_mask"], batch["labels"])
            mask = mask.bool()
            logp = logits.log_softmax(-1)
            top_lp, top_id = logp.topk(min(k, logp.shape[-1]), dim=-1)
            sel_lp, sel_id = top_lp[mask], top_id[mask]
            rest = log_mass_outside_logps(logp, top_id)[mask]  # logp is normalised: one logsumexp
            ids_l.append(sel_id.to(torch.int32).cpu().numpy())
            logps_l.append(sel_lp.to(torch.float16).cpu().numpy())
            rest_l.append(rest.to(torch.float32).cpu().numpy())
            if reference is not None:
                ref_logits = response_logits(reference, batch["input_ids"], batch["attention_mask"],
                                             batch["labels"])[0]
                # log_softmax at the k ids only: z[ids] − logsumexp(z), no [rows, L, V] log-probabilities
                ref_lp = ref_logits.gather(-1, top_id) - torch.logsumexp(ref_logits, -1, keepdim=True)
                ref_l.append(ref_lp[mask].to(torch.float16).cpu().numpy())
            lengths.extend(mask.sum(1).tolist())
            bar.advance(mask.shape[0])
    np.save(out / "ids.npy", np.concatenate(ids_l))
    np.save(out / "logps.npy", np.concatenate(logps_l))
    np.save(out / "rest.npy", np.concatenate(rest_l))
    if reference is not None:
        np.save(out / "ref_logps.npy", np.concatenate(ref_l))
    np.save(out / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


class TopKCache:
    """Read side of a cache artifact: ``cache[i]`` is sequence i's arrays (memory-mapped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.ids = np.load(self.path / "ids.npy", mmap_mode="r")
        self.logps = np.load(self.path / "logps.npy", mmap_mode="r")
        ref = self.path / "ref_logps.npy"
        self.ref_logps = np.load(ref, mmap_mode="r") if ref.exists() else None
        self.rest = np.load(self.path / "rest.npy", mmap_mode="r")
        if self.rest.dtype != np.float32:
            raise ValueError(f"{self.path / 'rest.npy'} holds {self.rest.dtype}, not the exact float32 log remaining "
                             "mass this version reads: the cache was built by an older version; delete "
                             f"{self.path} and run again to rebuild it")
        self.offsets = np.load(self.path / "offsets.npy")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict:
        a, b = self.offsets[i], self.offsets[i + 1]
        out = {"ids": np.asarray(self.ids[a:b]), "logps": np.asarray(self.logps[a:b]),
               "rest": np.asarray(self.rest[a:b])}
        if self.ref_logps is not None:
            out["ref_logps"] = np.asarray(self.ref_logps[a:b])
        return out

    @property
    def bytes_per_token(self) -> float:
        """Stored bytes per response token (array payloads; each file adds a fixed ~128-byte header)."""
        n = max(1, int(self.offsets[-1]))
        arrays = [self.ids, self.logps, self.rest] + ([self.ref_logps] if self.ref_logps is not None else [])
        return sum(a.nbytes for a in arrays) / n
