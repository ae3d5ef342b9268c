"""On-policy sampling, done once before training.

* ADPA: one greedy response ŷ per prompt from the student's start model.
* PAD: ``n_samples`` responses per prompt at ``temperature``/``top_p``, reduced to ``n_keep`` by
  greedy max-min diversity on the token-level Levenshtein distance (PAD, Li et al. 2025, §3.1).
"""
from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def select_diverse(responses: list[str], n_keep: int) -> list[int]:
    """Indices of ``n_keep`` responses chosen greedily to maximise the minimum pairwise distance.

    Start from the pair at the largest Levenshtein distance (on whitespace tokens); then add, one at
    a time, the response whose distance to its nearest chosen response is largest (ties: lowest
    index). Duplicates are chosen last, so distinct responses are preferred when there are enough.
    """
    n = len(responses)
    if n_keep > n:
        raise ValueError(f"n_keep={n_keep} exceeds the {n} sampled responses; lower method.n_keep or raise n_samples")
    if n_keep == n:
        return list(range(n))
    toks = [r.split() for r in responses]
    d = [[Levenshtein.distance(toks[i], toks[j]) for j in range(n)] for i in range(n)]
    if n_keep == 1:
        return [0]
    i0, j0 = max(((i, j) for i in range(n) for j in range(i + 1, n)), key=lambda ij: (d[ij[0]][ij[1]], -ij[0], -ij[1]))
    chosen = [i0, j0]
    while len(chosen) < n_keep:
        rest = [i for i in range(n) if i not in chosen]
        chosen.append(max(rest, key=lambda i: (min(d[i][c] for c in chosen), -i)))
    return sorted(chosen)
