r"""MLM and MAE seen as dropout: the embedding correction, DropToken, and key masking.

Dropout trains :math:`f(x\varepsilon/p)` with :math:`\varepsilon \sim \mathrm{Bernoulli}(p)` and predicts
with the *weight average* :math:`f(\mathbb E[\cdot])`; the general rule (post 8770) is that a model
trained on :math:`f(x, \varepsilon)` should be evaluated at :math:`f(x, \mathbb E[\varepsilon])`.

* **MLM.** BERT's masking replaces a chosen token (rate :math:`r`, 15 %) by [MASK] (80 %), keeps it
  (10 %) or puts a random token (10 %). Its expectation replaces every embedding row by
  :math:`E_i \leftarrow (1-r)E_i + r(0.8E_{[\mathrm{MASK}]} + 0.1E_i + 0.1\bar E)`, the expected
  input embedding under pre-training noise (:func:`mlm_consistent_embeddings`, applied once
  before fine-tuning). The post found "no significant change" on CLUE: the inconsistency matters
  less than assumed.
* **MAE.** Dropping tokens from the encoder equals zeroing their attention *columns* and
  renormalising in every layer: :math:`\mathrm{Norm}(A \odot M) = \mathrm{softmax}` with the
  dropped keys at :math:`-\infty` (:func:`mae_key_mask`). Its expectation is :math:`\mathrm{Norm}(pA)
  = A`, so MAE's fine-tuning on all tokens is consistent with its pre-training, unlike MLM's.
* **DropToken.** Drop a random fraction of the input tokens during fine-tuning but keep the
  original position ids of the rest (:func:`drop_tokens`): shorter sequences, faster training, no
  dropping at inference. The post's CLUE table: only some tasks benefit; best rates 0.1-0.15.

Reference: J. Su, "Dropout视角下的MLM和MAE：一些新的启发" (kexue.fm/archives/8770, 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from logitkit import _checks

__all__ = ["DroppedTokens", "drop_tokens", "mae_key_mask", "mlm_consistent_embeddings"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_rate(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def _check_ids(ids: Sequence[int] | Tensor | None, name: str, size: int, device) -> Tensor | None:
    """Token ids as a 1-D int64 tensor with values in [0, size)."""
    if ids is None:
        return None
    if not isinstance(ids, Tensor) and len(ids) == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    tensor = torch.as_tensor(ids, device=device)
    if tensor.dim() > 1 or tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"{name}: expected a sequence or 1-D tensor of int token ids, got {ids!r}")
    tensor = tensor.reshape(-1).to(torch.int64)
    if _checks.validate_args_enabled() and tensor.numel() and bool(((tensor < 0) | (tensor >= size)).any()):
        raise ValueError(
            f"{name}: expected token ids in [0, {size}), got values in "
            f"[{int(tensor.min())}, {int(tensor.max())}]"
        )
    return tensor


def mlm_consistent_embeddings(
    embedding_weight: Tensor,
    mask_id: int,
    *,
    mask_rate: float = 0.15,
    mask_token_prob: float = 0.8,
    keep_prob: float = 0.1,
    random_prob: float = 0.1,
    special_ids: Sequence[int] | Tensor | None = None,
    random_ids: Sequence[int] | Tensor | None = None,
) -> Tensor:
    r"""Token embeddings corrected to their expectation under MLM's pre-training noise.

    .. math::

        E_i' = (1 - r)\,E_i + r\,\big(a\,E_{[\mathrm{MASK}]} + b\,E_i + c\,\bar E\big)
             = (1 - r + rb)\,E_i + ra\,E_{[\mathrm{MASK}]} + rc\,\bar E,

    with :math:`r` = ``mask_rate``, :math:`a, b, c` = ``mask_token_prob``, ``keep_prob``,
    ``random_prob`` (summing to 1) and :math:`\bar E` the mean of the rows random replacement draws
    from. The coefficients sum to 1 (an affine combination); BERT's defaults give
    :math:`0.865E_i + 0.12E_{[\mathrm{MASK}]} + 0.015\bar E`. Apply once after pre-training,
    before fine-tuning: ``emb.weight.data.copy_(mlm_consistent_embeddings(emb.weight, mask_id))``.

    Args:
        embedding_weight: the token-embedding matrix, shape ``(V, H)``.
        mask_id: the row of the [MASK] token.
        mask_rate: :math:`r`, the fraction of tokens MLM selects (0.15 in BERT).
        mask_token_prob, keep_prob, random_prob: what happens to a selected token (0.8 / 0.1 /
            0.1 in BERT); must sum to 1.
        special_ids: rows returned unchanged ([CLS], [SEP], [PAD], [MASK], ...): MLM never selects
            special tokens, so they saw no noise. Default: every row is corrected, as in the post.
        random_ids: the tokens random replacement draws from (default: the whole vocabulary).

    Returns:
        The corrected matrix, a new tensor of ``embedding_weight``'s shape and dtype
        (differentiable; low precision is computed in float32).

    Example:
        >>> E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])   # row 2 is [MASK]
        >>> mlm_consistent_embeddings(E, mask_id=2, special_ids=[2])
        tensor([[0.8700, 0.0050],
                [0.0050, 0.8700],
                [0.0000, 0.0000]])

    Reference: J. Su, kexue.fm/archives/8770 (2021).
    """
    _checks.check_floating(embedding_weight, "embedding_weight")
    if embedding_weight.dim() != 2 or embedding_weight.shape[0] == 0:
        raise ValueError(
            "embedding_weight: expected a non-empty (vocab_size, hidden) matrix, got shape "
            f"{tuple(embedding_weight.shape)}"
        )
    vocab = embedding_weight.shape[0]
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not 0 <= mask_id < vocab:
        raise ValueError(f"mask_id: expected an int in [0, {vocab}), got {mask_id!r}")
    r = _check_rate(mask_rate, "mask_rate")
    a = _check_rate(mask_token_prob, "mask_token_prob")
    b = _check_rate(keep_prob, "keep_prob")
    c = _check_rate(random_prob, "random_prob")
    if not math.isclose(a + b + c, 1.0, abs_tol=1e-9):
        raise ValueError(
            "mask_token_prob + keep_prob + random_prob: expected a sum of 1, got "
            f"{a} + {b} + {c} = {a + b + c:g}"
        )
    special = _check_ids(special_ids, "special_ids", vocab, embedding_weight.device)
    pool = _check_ids(random_ids, "random_ids", vocab, embedding_weight.device)
    if pool is not None and pool.numel() == 0:
        raise ValueError("random_ids: expected at least one token id, got none")
    weight = embedding_weight.float() if embedding_weight.dtype in _LOW_PRECISION else embedding_weight
    mean = weight.mean(0) if pool is None else weight.index_select(0, pool).mean(0)
    corrected = (1 - r + r * b) * weight + (r * a) * weight[mask_id] + (r * c) * mean
    if special is not None and special.numel():
        untouched = torch.zeros(vocab, dtype=torch.bool, device=weight.device)
        untouched[special] = True
        corrected = torch.where(untouched.unsqueeze(1), weight, corrected)
    return corrected.to(embedding_weight.dtype)


class DroppedTokens(NamedTuple):
    """A compacted batch: kept tokens first, in order, right-padded to the longest row."""

    input_ids: Tensor
    """``(N, L')`` token ids, ``pad_id`` in padding slots."""
    position_ids: Tensor
    """``(N, L')`` the kept tokens' original position ids (0 in padding slots)."""
    attention_mask: Tensor
    """``(N, L')`` bool, ``True`` on kept tokens."""
    index: Tensor
    """``(N, L')`` int64: the original column of each slot (gather other per-token tensors, e.g.
    segment ids or labels, with it; meaningless in padding slots)."""


def drop_tokens(
    input_ids: Tensor,
    position_ids: Tensor | None,
    drop_rate: float,
    *,
    attention_mask: Tensor | None = None,
    keep_ids: Sequence[int] | Tensor = (),
    generator: torch.Generator | None = None,
    pad_id: int = 0,
    training: bool = True,
) -> DroppedTokens:
    r"""DropToken: drop each token with probability ``drop_rate``, keep the others' position ids.

    .. math::

        \text{keep}_{n,t} = \neg\,\text{valid}_{n,t} \lor t \in \text{keep\_ids} \lor u_{n,t} \ge \rho,
        \qquad u_{n,t} \sim \mathcal U[0, 1),

    (valid = ``attention_mask``); the kept tokens are moved to the front of each row in their
    original order and the batch is cut to the longest row :math:`L' \le L`, so the encoder runs on
    shorter sequences. Position ids travel with their tokens (the post's DropToken keeps the
    original positions; so does MAE). ``training=False`` (inference) drops nothing.

    The output length depends on the random draw, so this is a data-preparation step for eager
    mode (like ``torch.nonzero``), not part of a ``torch.compile(fullgraph=True)`` graph.

    Args:
        input_ids: ``(N, L)`` integer token ids.
        position_ids: ``(N, L)`` or ``(L,)`` integer positions, or ``None`` for ``0..L-1``.
        drop_rate: :math:`\rho \in [0, 1]`.
        attention_mask: ``(N, L)`` bool or 0/1 integers, ``True`` on real tokens (padding is
            removed too); default all real.
        keep_ids: token ids never dropped (e.g. [CLS], [SEP]).
        generator: random generator for reproducible drops.
        pad_id: id written in padding slots.
        training: drop only when ``True`` (as ``torch.nn.functional.dropout``).

    Returns:
        :class:`DroppedTokens` ``(input_ids, position_ids, attention_mask, index)``.

    Example:
        >>> ids = torch.tensor([[101, 7, 8, 9, 102, 0]])
        >>> mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
        >>> g = torch.Generator().manual_seed(1)
        >>> out = drop_tokens(ids, None, 0.5, attention_mask=mask, keep_ids=[101, 102], generator=g)
        >>> out.input_ids, out.position_ids
        (tensor([[101,   9, 102]]), tensor([[0, 3, 4]]))

    Reference: J. Su, kexue.fm/archives/8770 (2021).
    """
    _checks.check_tensor(input_ids, "input_ids")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids: expected a 2-D integer tensor (N, L), got shape {tuple(input_ids.shape)} "
            f"and dtype {input_ids.dtype}"
        )
    n, length = input_ids.shape
    device = input_ids.device
    if position_ids is None:
        positions = torch.arange(length, device=device).expand(n, length)
    else:
        _checks.check_tensor(position_ids, "position_ids")
        if position_ids.is_floating_point() or position_ids.shape not in ((n, length), (length,)):
            raise ValueError(
                f"position_ids: expected an integer tensor of shape ({n}, {length}) or ({length},), "
                f"got shape {tuple(position_ids.shape)} and dtype {position_ids.dtype}"
            )
        positions = position_ids.expand(n, length)
    rate = _check_rate(drop_rate, "drop_rate")
    if attention_mask is None:
        valid = torch.ones(n, length, dtype=torch.bool, device=device)
    else:
        _checks.check_tensor(attention_mask, "attention_mask")
        if attention_mask.shape != (n, length) or attention_mask.is_floating_point():
            raise ValueError(
                f"attention_mask: expected a bool or 0/1 integer tensor of shape ({n}, {length}), "
                f"got shape {tuple(attention_mask.shape)} and dtype {attention_mask.dtype}"
            )
        valid = attention_mask.bool()
    protected = torch.as_tensor(keep_ids, dtype=input_ids.dtype, device=device).reshape(-1)
    kept = valid
    if training and rate > 0:
        dropped = torch.rand(n, length, generator=generator, device=device) < rate
        if protected.numel():
            dropped &= ~torch.isin(input_ids, protected)
        kept = valid & ~dropped
    # Kept tokens first, in order (a stable sort of the "dropped" flags), then cut to the longest row.
    order = torch.sort((~kept).to(torch.uint8), dim=1, stable=True).indices
    new_length = int(kept.sum(1).max()) if n else 0
    index = order[:, :new_length]
    slot_kept = kept.gather(1, index)
    return DroppedTokens(
        input_ids=torch.where(slot_kept, input_ids.gather(1, index), pad_id),
        position_ids=torch.where(slot_kept, positions.gather(1, index), 0),
        attention_mask=slot_kept,
        index=index,
    )


def mae_key_mask(keep: Tensor) -> Tensor:
    r"""An attention mask under which attention equals attention over the kept tokens only.

    .. math::

        \mathrm{Norm}(A \odot M)_{ij} = \frac{A_{ij}\,\text{keep}_j}{\sum_{j'} A_{ij'}\,\text{keep}_{j'}}
        = \mathrm{softmax}_j\big(s_{ij} + \log \text{keep}_j\big),

    i.e. the dropped tokens' attention *columns* are zeroed and rows renormalised (MAE as attention
    dropout, post 8770). Used in every layer, with position ids unchanged, the outputs at the kept
    tokens equal those of the encoder run on the kept tokens alone (:func:`drop_tokens`).

    Args:
        keep: ``(N, L)`` bool, ``True`` on tokens that stay visible as keys.

    Returns:
        ``(N, 1, 1, L)`` bool mask (``True`` = may attend) for
        ``torch.nn.functional.scaled_dot_product_attention`` or
        :func:`~logitkit.models.attention.entropy_invariant_attention`, broadcasting over heads and
        queries. For ``torch.nn.MultiheadAttention`` pass ``key_padding_mask=~keep`` instead.

    Example:
        >>> import torch.nn.functional as F
        >>> q, k, v = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
        >>> keep = torch.tensor([[True, False, True, True, False]])
        >>> full = F.scaled_dot_product_attention(q, k, v, attn_mask=mae_key_mask(keep))
        >>> kept = F.scaled_dot_product_attention(q, k[:, :, [0, 2, 3]], v[:, :, [0, 2, 3]])
        >>> torch.allclose(full, kept)
        True

    Reference: J. Su, kexue.fm/archives/8770 (2021); He et al., "Masked Autoencoders Are Scalable
    Vision Learners" (2021).
    """
    _checks.check_tensor(keep, "keep")
    if keep.dtype != torch.bool or keep.dim() != 2:
        raise ValueError(
            f"keep: expected a 2-D bool tensor (N, L), got shape {tuple(keep.shape)} and dtype {keep.dtype}"
        )
    return keep[:, None, None, :]
