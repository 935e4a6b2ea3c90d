"""float64 oracles for the MLM embedding correction and key masking (spec: models_and_posthoc.md §4)."""

from __future__ import annotations

import math

import numpy as np


def mlm_embeddings(weight, mask_id, rate, p_mask, p_keep, p_random, special=(), random_ids=None):
    """E_i <- (1 - r) E_i + r (p_mask E_mask + p_keep E_i + p_random mean(E[random_ids])), row by row."""
    weight = np.asarray(weight, dtype=np.float64)
    pool = range(len(weight)) if random_ids is None else list(random_ids)
    mean = np.array([math.fsum(weight[j, h] for j in pool) / len(pool) for h in range(weight.shape[1])])
    out = weight.copy()
    for i in range(len(weight)):
        if i in set(special):
            continue
        out[i] = (1 - rate) * weight[i] + rate * (
            p_mask * weight[mask_id] + p_keep * weight[i] + p_random * mean
        )
    return out


def renormalised_column_mask(attn, keep):
    """Norm(A * M): zero the attention columns of dropped keys, renormalise each row."""
    attn = np.asarray(attn, dtype=np.float64)
    out = np.zeros_like(attn)
    for i in range(attn.shape[0]):
        row = [attn[i, j] if keep[j] else 0.0 for j in range(attn.shape[1])]
        total = math.fsum(row)
        out[i] = [r / total for r in row]
    return out
