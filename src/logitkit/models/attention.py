r"""Entropy-invariant scaled dot-product attention: scale the scores by :math:`\log n`.

Standard attention, :math:`\mathrm{softmax}(QK^\top/\sqrt d)V`, spreads its attention over more
keys as the number of keys :math:`n` grows: the entropy of each attention row grows like
:math:`\log n`, so a model trained at one length attends ever more diffusely at longer ones. Post
8823 asks that the entropy be insensitive to :math:`n`; for keys spread at random on a sphere,
the entropy is :math:`\log n - \kappa' \lambda d + O(1)` for a score scale :math:`\lambda`, which
stays constant when :math:`\lambda \propto \log n / d`. Calibrated to coincide with the standard
scale at a base length (512 in the post):

.. math::

    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{\log_{b} n}{\sqrt d}\, QK^\top\Big) V,
    \qquad \lambda(n) = \frac{\log n}{\log b \,\sqrt d},

equal to standard attention when :math:`n = b` (``base_length``), flatter for :math:`n < b`,
sharper for :math:`n > b`.

**What n is.** :math:`n` is the number of keys *each query can see*: with a padding or other
boolean mask it is the number of ``True`` entries of the query's mask row (``-inf`` entries of a
float mask are not counted; finite biases are), and with ``is_causal=True`` query :math:`i` sees
:math:`i + 1` keys. The scale is therefore one number per query row, applied by multiplying the
query (``q_i \lambda_i``) before ``torch.nn.functional.scaled_dot_product_attention``, which then runs
with ``scale=1``; without a mask the single scale :math:`\lambda(S)` goes to SDPA's ``scale=``. The
post does not say how to count under masks; counting visible keys is what makes the scale depend
on the content length rather than the padded length. :math:`n \le 1` gives scale 0 (a single key
gets all the weight anyway); a query that sees no key returns zeros with zero gradient.

Reference: J. Su, "从熵不变性看Attention的Scale操作" (kexue.fm/archives/8823, 2021); follow-up
kexue.fm/archives/9588 (base 512 may be kept when the training length differs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from logitkit import _checks
from logitkit.ops.softmax import softmax

__all__ = [
    "EntropyInvariantMultiheadAttention",
    "entropy_invariant_attention",
    "entropy_invariant_scale",
]


def _check_scale_args(head_dim: int, base_length: float) -> None:
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
        raise ValueError(f"head_dim: expected a positive int, got {head_dim!r}")
    if isinstance(base_length, bool) or not isinstance(base_length, (int, float)) or not base_length > 1:
        raise ValueError(f"base_length: expected a number > 1, got {base_length!r}")


def entropy_invariant_scale(n: int | Tensor, head_dim: int, *, base_length: float = 512) -> float | Tensor:
    r"""The score scale :math:`\lambda(n) = \log_b n / \sqrt d = \log n / (\log b \sqrt d)`.

    .. math::

        \lambda(n) = \frac{\log \max(n, 1)}{\log b \cdot \sqrt{d}}

    Equals the standard :math:`1/\sqrt d` at :math:`n = b`. :math:`n` may be a tensor of visible-key
    counts (any shape, e.g. one per query); :math:`n \le 1` gives 0.

    Args:
        n: number of keys a query sees; an int, or an integer or floating tensor (values >= 0).
        head_dim: :math:`d`, the query / key dimension per head.
        base_length: :math:`b > 1`, the length at which the scale equals :math:`1/\sqrt d`
            (the post uses 512; set it to the training length to keep a trained model unchanged
            there).

    Returns:
        A float for an int ``n``; otherwise a tensor shaped like ``n`` (floating: ``n``'s dtype;
        integer: the default dtype).

    Example:
        >>> entropy_invariant_scale(512, 64) == 1 / 8
        True
        >>> entropy_invariant_scale(torch.tensor([1, 64, 512, 4096]), 64)
        tensor([0.0000, 0.0833, 0.1250, 0.1667])

    Reference: J. Su, kexue.fm/archives/8823 (2021).
    """
    _check_scale_args(head_dim, base_length)
    denominator = math.log(base_length) * math.sqrt(head_dim)
    if isinstance(n, Tensor):
        if n.is_complex() or n.dtype == torch.bool:
            raise TypeError(f"n: expected an integer or floating tensor, got dtype {n.dtype}")
        _checks.check_nonnegative_values(n, "n")
        counts = n if n.is_floating_point() else n.to(torch.get_default_dtype())
        return torch.log(counts.clamp_min(1)) / denominator
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative int or a tensor, got {n!r}")
    if n <= 1:
        return 0.0
    # Exact at the base length (log(b) / log(b) would round).
    return 1 / math.sqrt(head_dim) if n == base_length else math.log(n) / denominator


def _scale_dtype(query: Tensor) -> torch.dtype:
    """The per-row scales are computed in float64 for float64 queries, else in float32."""
    return torch.float64 if query.dtype == torch.float64 else torch.float32


def _visible(attn_mask: Tensor | None, is_causal: bool, length: int, keys: int, device) -> Tensor | None:
    """Boolean "query may see key" mask broadcastable to (..., L, S); None when all are visible."""
    visible = None
    if attn_mask is not None:
        visible = attn_mask if attn_mask.dtype == torch.bool else attn_mask != float("-inf")
    if is_causal:
        causal = torch.ones(length, keys, dtype=torch.bool, device=device).tril()
        visible = causal if visible is None else visible & causal
    return visible


def _check_attention_inputs(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None) -> None:
    for name, t in (("query", query), ("key", key), ("value", value)):
        _checks.check_floating(t, name)
        if t.dim() < 2:
            raise ValueError(f"{name}: expected shape (..., length, features), got {tuple(t.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"key: expected the query's feature size {query.shape[-1]} in the last dim, got shape "
            f"{tuple(key.shape)}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"value: expected the key's length {key.shape[-2]} in dim -2, got shape {tuple(value.shape)}"
        )
    if attn_mask is not None:
        _checks.check_tensor(attn_mask, "attn_mask")
        if not (attn_mask.dtype == torch.bool or attn_mask.is_floating_point()):
            raise TypeError(f"attn_mask: expected a bool or floating tensor, got dtype {attn_mask.dtype}")
        target = (query.shape[-2], key.shape[-2])
        try:
            ok = torch.broadcast_shapes(attn_mask.shape, target)[-2:] == target
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"attn_mask: expected a shape broadcastable to (..., {target[0]}, {target[1]}) "
                f"(query length, key length), got {tuple(attn_mask.shape)}"
            )


def entropy_invariant_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    base_length: float = 512,
    enable_gqa: bool = False,
) -> Tensor:
    r"""Scaled dot-product attention with the entropy-invariant scale :math:`\log_b n_i / \sqrt d`.

    .. math::

        o_i = \sum_j a_{ij} v_j, \qquad a_{ij} = \frac{e^{\lambda(n_i)\, q_i \cdot k_j + m_{ij}}}
        {\sum_{j'} e^{\lambda(n_i)\, q_i \cdot k_{j'} + m_{ij'}}}, \qquad
        \lambda(n) = \frac{\log n}{\log b\, \sqrt d},

    with :math:`n_i` the number of keys query :math:`i` sees (see the module notes) and
    :math:`m_{ij}` the mask (``-inf`` or ``False`` hides a key). Arguments follow
    :func:`torch.nn.functional.scaled_dot_product_attention`, except that ``scale`` is replaced by
    ``base_length`` and that ``attn_mask`` and ``is_causal`` may be combined (padding plus causal).

    Args:
        query: ``(..., L, E)``. key: ``(..., S, E)``. value: ``(..., S, Ev)``.
        attn_mask: bool (``True`` = may attend) or float (added to the scores) mask broadcastable
            to ``(..., L, S)``.
        is_causal: query :math:`i` sees keys :math:`0..i` (top-left aligned, as SDPA).
        dropout_p: attention dropout probability (as SDPA: pass 0 at evaluation).
        base_length: :math:`b > 1`; :math:`n = b` gives standard attention.
        enable_gqa: grouped-query attention, as SDPA.

    Returns:
        ``(..., L, Ev)``, computed by SDPA in the input dtype; rows that see no key are 0.

    Example:
        >>> q, k, v = torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8), torch.randn(2, 4, 16, 8)
        >>> out = entropy_invariant_attention(q, k, v, base_length=16)
        >>> torch.allclose(out, F.scaled_dot_product_attention(q, k, v))  # n = b: standard
        True

    Reference: J. Su, kexue.fm/archives/8823 (2021).
    """
    _check_attention_inputs(query, key, value, attn_mask)
    head_dim, length, keys = query.shape[-1], query.shape[-2], key.shape[-2]
    _check_scale_args(head_dim, base_length)
    _checks.check_positive(dropout_p, "dropout_p", allow_zero=True)
    visible = _visible(attn_mask, is_causal, length, keys, query.device)
    if visible is None:
        scale = entropy_invariant_scale(keys, head_dim, base_length=base_length)
        return F.scaled_dot_product_attention(
            query, key, value, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa
        )
    counts = visible.sum(-1, keepdim=True)
    scale = entropy_invariant_scale(counts.to(_scale_dtype(query)), head_dim, base_length=base_length)
    scaled_query = query * scale.to(query.dtype)
    if attn_mask is None:  # causal only: every query sees at least key 0
        return F.scaled_dot_product_attention(
            scaled_query, key, value, dropout_p=dropout_p, is_causal=True, scale=1.0, enable_gqa=enable_gqa
        )
    # A query that sees nothing gets every key (so no row is all -inf inside SDPA, whatever the
    # backend), then a zero output: the double-`where` pattern, zero gradient for that row.
    dead = counts == 0
    if attn_mask.dtype == torch.bool:
        mask = visible | dead
    else:
        mask = torch.where(visible, attn_mask, float("-inf")) if is_causal else attn_mask
        mask = torch.where(dead, 0.0, mask).to(query.dtype)
    out = F.scaled_dot_product_attention(
        scaled_query, key, value, attn_mask=mask, dropout_p=dropout_p, scale=1.0, enable_gqa=enable_gqa
    )
    return out.masked_fill(dead, 0.0)


class EntropyInvariantMultiheadAttention(nn.MultiheadAttention):
    r"""``torch.nn.MultiheadAttention`` with the entropy-invariant scale :math:`\log_b n / \sqrt d`.

    Same constructor (plus the keyword ``base_length``), parameters, ``state_dict`` keys, masks and
    ``forward`` signature as ``nn.MultiheadAttention``, so a trained module's weights load directly
    (:meth:`from_multihead_attention`). Each query's :math:`n` is the number of keys it sees after
    ``key_padding_mask``, ``attn_mask`` / ``is_causal`` (and the extra keys of ``add_bias_kv`` /
    ``add_zero_attn``); :math:`n = b` for every query gives exactly ``nn.MultiheadAttention``.
    ``is_causal=True`` without ``attn_mask`` applies a causal mask (``nn.MultiheadAttention``
    requires the mask as well and treats the flag as a hint).

    Example:
        >>> mha = nn.MultiheadAttention(16, 4, batch_first=True)
        >>> ours = EntropyInvariantMultiheadAttention.from_multihead_attention(mha, base_length=10)
        >>> x = torch.randn(2, 10, 16)
        >>> torch.allclose(ours(x, x, x)[0], mha(x, x, x)[0], atol=1e-6)  # 10 keys = base length
        True
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        base_length: float = 512,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            dropout=dropout,
            bias=bias,
            add_bias_kv=add_bias_kv,
            add_zero_attn=add_zero_attn,
            kdim=kdim,
            vdim=vdim,
            batch_first=batch_first,
            device=device,
            dtype=dtype,
        )
        _check_scale_args(self.head_dim, base_length)
        self.base_length = base_length

    @classmethod
    def from_multihead_attention(
        cls, module: nn.MultiheadAttention, *, base_length: float = 512
    ) -> EntropyInvariantMultiheadAttention:
        """A copy of a (trained) ``nn.MultiheadAttention`` with the entropy-invariant scale."""
        p = next(module.parameters())
        new = cls(
            module.embed_dim,
            module.num_heads,
            dropout=module.dropout,
            bias=module.in_proj_bias is not None,
            add_bias_kv=module.bias_k is not None,
            add_zero_attn=module.add_zero_attn,
            kdim=module.kdim,
            vdim=module.vdim,
            batch_first=module.batch_first,
            device=p.device,
            dtype=p.dtype,
            base_length=base_length,
        )
        new.load_state_dict(module.state_dict())
        return new.train(module.training)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, base_length={self.base_length}"

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        batched = query.dim() == 3
        if not batched:  # (L, E) -> (1, L, E)
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, length, _ = query.shape
        heads, head_dim = self.num_heads, self.head_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        mask = _merge_masks(attn_mask, key_padding_mask, n, heads, length, k.shape[1], q.dtype)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(n, 1, -1)], 1)
            v = torch.cat([v, self.bias_v.expand(n, 1, -1)], 1)
            mask = _pad_mask(mask)
        q, k, v = (t.reshape(n, t.shape[1], heads, head_dim).transpose(1, 2) for t in (q, k, v))
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(n, heads, 1, head_dim)], 2)
            v = torch.cat([v, v.new_zeros(n, heads, 1, head_dim)], 2)
            mask = _pad_mask(mask)
        causal = is_causal and attn_mask is None
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            visible = _visible(mask, causal, length, k.shape[2], q.device)
            if visible is None:
                scale = entropy_invariant_scale(k.shape[2], head_dim, base_length=self.base_length)
                scores = (q * scale) @ k.transpose(-2, -1)
            else:
                counts = visible.sum(-1, keepdim=True).to(_scale_dtype(q))
                scale = entropy_invariant_scale(counts, head_dim, base_length=self.base_length)
                scores = (q * scale.to(q.dtype)) @ k.transpose(-2, -1)
            if mask is not None and mask.dtype != torch.bool:
                scores = scores + mask
            weights = softmax(scores, -1, mask=visible)
            if dropout > 0:
                weights = F.dropout(weights, p=dropout)
            out = weights @ v
        else:
            out = entropy_invariant_attention(
                q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout, base_length=self.base_length
            )
        out = out.transpose(1, 2).reshape(n, length, self.embed_dim)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.transpose(0, 1)), weights


def _merge_masks(
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    batch: int,
    heads: int,
    length: int,
    keys: int,
    dtype: torch.dtype,
) -> Tensor | None:
    """nn.MultiheadAttention's masks (bool ``True`` = hidden, or additive floats) as one SDPA mask
    broadcastable to ``(N, H, L, S)``: bool ``True`` = visible, or additive floats."""
    parts = []
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            attn_mask = attn_mask.view(1, 1, length, keys)
        elif attn_mask.dim() == 3:
            attn_mask = attn_mask.view(batch, heads, length, keys)
        else:
            raise ValueError(
                f"attn_mask: expected shape ({length}, {keys}) or ({batch * heads}, {length}, {keys}), "
                f"got {tuple(attn_mask.shape)}"
            )
        parts.append(attn_mask)
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch, keys):
            raise ValueError(
                f"key_padding_mask: expected shape ({batch}, {keys}), got {tuple(key_padding_mask.shape)}"
            )
        parts.append(key_padding_mask.view(batch, 1, 1, keys))
    if not parts:
        return None
    if all(p.dtype == torch.bool for p in parts):
        hidden = parts[0] if len(parts) == 1 else parts[0] | parts[1]
        return ~hidden
    total = None
    for p in parts:
        additive = (
            torch.zeros(p.shape, dtype=dtype, device=p.device).masked_fill(p, float("-inf"))
            if p.dtype == torch.bool
            else p.to(dtype)
        )
        total = additive if total is None else total + additive
    return total


def _pad_mask(mask: Tensor | None) -> Tensor | None:
    """One more key, visible to every query (the extra keys of add_bias_kv / add_zero_attn)."""
    if mask is None:
        return None
    fill = True if mask.dtype == torch.bool else 0.0
    return F.pad(mask, (0, 1), value=fill)
