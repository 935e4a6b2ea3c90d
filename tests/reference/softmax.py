"""float64 oracles for the softmax family and smooth max / min (spec: operators.md §1-2)."""

from __future__ import annotations

import math

import numpy as np


def _rows(x: np.ndarray, axis: int):
    """Iterate over 1-D rows along ``axis``, yielding (index, row) with index into a moved view."""
    moved = np.moveaxis(x, axis, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        yield idx, moved[idx]


def _kept(row: np.ndarray, mask_row: np.ndarray | None) -> np.ndarray:
    keep = row != -math.inf
    if mask_row is not None:
        keep &= mask_row
    return keep


def _broadcast_mask(mask, shape):
    return None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)


def softmax(x, axis: int, temperature=1.0, mask=None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64) / temperature
    mask = _broadcast_mask(mask, x.shape)
    out = np.zeros_like(x)
    out_m = np.moveaxis(out, axis, -1)
    mask_m = None if mask is None else np.moveaxis(mask, axis, -1)
    for idx, row in _rows(x, axis):
        keep = _kept(row, None if mask_m is None else mask_m[idx])
        if not keep.any():
            continue
        m = max(row[keep])
        e = [math.exp(v - m) if k else 0.0 for v, k in zip(row, keep, strict=True)]
        s = math.fsum(e)
        out_m[idx] = [v / s for v in e]
    return out


def logsumexp(x, axis: int, temperature=1.0, mask=None) -> np.ndarray:
    """tau * log sum exp(x / tau); -inf for a row with no kept entry."""
    x = np.asarray(x, dtype=np.float64)
    mask = _broadcast_mask(mask, x.shape)
    mask_m = None if mask is None else np.moveaxis(mask, axis, -1)
    shape = np.moveaxis(x, axis, -1).shape[:-1]
    out = np.empty(shape)
    for idx, row in _rows(x, axis):
        row = row / temperature
        keep = _kept(row, None if mask_m is None else mask_m[idx])
        if not keep.any():
            out[idx] = -math.inf
            continue
        m = max(row[keep])
        out[idx] = temperature * (m + math.log(math.fsum(math.exp(v - m) for v in row[keep])))
    return out


def log_softmax(x, axis: int, temperature=1.0, mask=None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    lse = np.expand_dims(logsumexp(x, axis, temperature, mask), axis) / temperature
    z = x / temperature
    if mask is not None:
        z = np.where(np.broadcast_to(mask, z.shape), z, -math.inf)
    with np.errstate(invalid="ignore"):
        out = z - lse
    return np.where(np.isneginf(np.broadcast_to(lse, z.shape)), -math.inf, out)


def pnorm_max(x, axis: int, temperature=1.0) -> np.ndarray:
    """(sum x^p)^(1/p) with p = 2/tau + 1 (post 3290 eq. 13), non-negative x."""
    p = 2.0 / temperature + 1.0
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(np.moveaxis(x, axis, -1).shape[:-1])
    for idx, row in _rows(x, axis):
        m = max(row)
        out[idx] = 0.0 if m == 0 else m * math.fsum((v / m) ** p for v in row) ** (1.0 / p)
    return out


def loglog_max(x, axis: int, temperature=1.0) -> np.ndarray:
    """tau log log sum exp(exp(x / tau)) (post 3290 eq. 14), evaluated with exact shifting."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(np.moveaxis(x, axis, -1).shape[:-1])
    for idx, row in _rows(x, axis):
        u = row / temperature
        c = max(u)
        # log sum exp(e^u) = e^c + log sum exp(e^c (e^{u-c} - 1))
        inner = math.fsum(math.exp(-math.exp(c) * -math.expm1(v - c)) for v in u)
        out[idx] = temperature * (c + math.log1p(math.log(inner) * math.exp(-c)))
    return out
