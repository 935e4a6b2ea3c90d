"""Entropy-invariant attention (spec: operators.md §7; reproduction_targets.md §7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import FLOAT_DTYPES, TOLERANCE, assert_compiles, assert_gradcheck, assert_raises
from tests.reference import attention as ref


def _qkv(batch=(2, 3), length=5, keys=7, dim=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, length, dim, generator=g, dtype=dtype)
    k = torch.randn(*batch, keys, dim, generator=g, dtype=dtype)
    v = torch.randn(*batch, keys, 3, generator=g, dtype=dtype)
    return q, k, v


def _oracle(q, k, v, visible=None, bias=None, base=512.0):
    """Loop the per-query oracle over the batch dims; visible / bias broadcast to (..., L, S)."""
    shape = (*q.shape[:-2], q.shape[-2], k.shape[-2])
    vis = None if visible is None else np.broadcast_to(visible.numpy(), shape)
    bia = None if bias is None else np.broadcast_to(bias.numpy(), shape)
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for idx in np.ndindex(*q.shape[:-2]):
        out[idx] = ref.attention(
            q[idx].numpy(),
            k[idx].numpy(),
            v[idx].numpy(),
            None if vis is None else vis[idx],
            None if bia is None else bia[idx],
            base,
        )
    return torch.from_numpy(out)


# ---------------------------------------------------------------------------------------------
# The scale
# ---------------------------------------------------------------------------------------------


def test_scale_spec_values():
    assert LF.entropy_invariant_scale(512, 64) == 1 / 8  # exactly standard at the base length
    assert LF.entropy_invariant_scale(1024, 64) == pytest.approx(
        math.log(1024) / math.log(512) / 8, rel=1e-15
    )
    assert LF.entropy_invariant_scale(64, 64, base_length=64) == 1 / 8
    assert LF.entropy_invariant_scale(1, 16) == 0.0
    assert LF.entropy_invariant_scale(0, 16) == 0.0
    n = torch.tensor([0, 1, 2, 512, 4096])
    expected = torch.tensor([0.0, 0.0, math.log(2), math.log(512), math.log(4096)]) / math.log(512) / 8
    torch.testing.assert_close(LF.entropy_invariant_scale(n, 64), expected)
    n64 = torch.tensor([3.0, 700.0], dtype=torch.float64)
    out = LF.entropy_invariant_scale(n64, 5, base_length=100.0)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.log(n64) / math.log(100) / math.sqrt(5))


@given(st.integers(2, 10**6), st.integers(2, 10**6), st.integers(1, 512))
def test_scale_is_proportional_to_log_n(a, b, d):
    ratio = LF.entropy_invariant_scale(a, d) / LF.entropy_invariant_scale(b, d)
    assert ratio == pytest.approx(math.log(a) / math.log(b), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Against SDPA and the oracle
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_sdpa_at_the_base_length(dtype):
    q, k, v = _qkv(keys=9, dtype=dtype)
    torch.testing.assert_close(
        LF.entropy_invariant_attention(q, k, v, base_length=9), F.scaled_dot_product_attention(q, k, v)
    )
    # A mask under which every query sees exactly base_length keys.
    visible = torch.ones(5, 9, dtype=torch.bool)
    visible[torch.arange(5), torch.arange(5)] = False  # each query sees 8 keys
    torch.testing.assert_close(
        LF.entropy_invariant_attention(q, k, v, attn_mask=visible, base_length=8),
        F.scaled_dot_product_attention(q, k, v, attn_mask=visible),
    )


def test_no_mask_matches_oracle_and_other_lengths_differ():
    q, k, v = _qkv(keys=30)
    out = LF.entropy_invariant_attention(q, k, v)
    torch.testing.assert_close(out, _oracle(q, k, v), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("kind", ["bool", "float", "causal", "bool+causal", "float+causal"])
def test_masks_match_oracle(kind):
    q, k, v = _qkv(length=6, keys=6, seed=1)
    g = torch.Generator().manual_seed(2)
    keep = torch.rand(2, 1, 6, 6, generator=g) > 0.3
    keep[0, 0, 2] = False  # a query that sees nothing (unless causal adds nothing either)
    bias = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    if kind.startswith("bool"):
        mask, visible, extra = keep, keep, None
    elif kind.startswith("float"):
        mask = bias.masked_fill(~keep, float("-inf"))
        visible, extra = keep, bias
    else:
        mask, visible, extra = None, causal, None
    is_causal = "causal" in kind
    if is_causal and mask is not None:
        visible = visible & causal
    out = LF.entropy_invariant_attention(q, k, v, attn_mask=mask, is_causal=is_causal, base_length=4)
    torch.testing.assert_close(out, _oracle(q, k, v, visible, extra, base=4), rtol=1e-12, atol=1e-12)
    assert not torch.isnan(out).any()


def test_padding_counts_visible_keys_not_padded_length():
    # A row padded from 5 to 9 keys gives the same output as the unpadded row.
    q, k, v = _qkv(batch=(1,), keys=9, seed=3)
    keep = torch.tensor([[True] * 5 + [False] * 4])
    padded = LF.entropy_invariant_attention(q, k, v, attn_mask=keep[:, None, :], base_length=16)
    short = LF.entropy_invariant_attention(q, k[:, :5], v[:, :5], base_length=16)
    torch.testing.assert_close(padded, short, rtol=1e-12, atol=1e-12)


def test_causal_scale_per_position():
    # Query i sees i + 1 keys: its scale is log(i + 1) / (log b sqrt d); query 0 copies value 0.
    q, k, v = _qkv(batch=(1,), length=6, keys=6, seed=4)
    out = LF.entropy_invariant_attention(q, k, v, is_causal=True, base_length=3)
    for i in range(6):
        lam = ref.scale(i + 1, 4, 3)
        expected = F.scaled_dot_product_attention(q[:, i : i + 1], k[:, : i + 1], v[:, : i + 1], scale=lam)
        torch.testing.assert_close(out[:, i : i + 1], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, 0], v[:, 0])


def test_query_that_sees_nothing_is_zero_with_zero_gradient():
    q, k, v = (t.requires_grad_() for t in _qkv(batch=(1,), length=3, keys=4, seed=5))
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    for m in (mask, torch.zeros(3, 4, dtype=torch.float64).masked_fill(~mask, float("-inf"))):
        out = LF.entropy_invariant_attention(q, k, v, attn_mask=m)
        assert (out[:, 1] == 0).all()
        grads = torch.autograd.grad(out.sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in grads)
        assert (grads[0][:, 1] == 0).all()


def test_grouped_query_attention_and_dropout_pass_through():
    g = torch.Generator().manual_seed(6)
    q = torch.randn(1, 4, 5, 8, generator=g)
    k, v = torch.randn(1, 2, 5, 8, generator=g), torch.randn(1, 2, 5, 8, generator=g)
    ours = LF.entropy_invariant_attention(q, k, v, enable_gqa=True, base_length=5)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    torch.manual_seed(0)
    a = LF.entropy_invariant_attention(q, k, v, enable_gqa=True, dropout_p=0.5, base_length=5)
    torch.manual_seed(0)
    b = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, dropout_p=0.5)
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# The property the post derives: entropy insensitive to the number of keys
# ---------------------------------------------------------------------------------------------


def _mean_entropy(scale_fn, n, d=64, radius2=4.0, seed=0):
    # q, k uniform on a sphere; scores q.k / sqrt(d) have standard deviation sqrt(radius2).
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(64, d, generator=g, dtype=torch.float64), dim=-1) * math.sqrt(radius2 * d)
    k = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1) * math.sqrt(radius2 * d)
    p = torch.softmax(scale_fn(n, d) * (q @ k.T), -1)
    return float(-(p * torch.log(p)).sum(-1).mean())


def test_entropy_stays_nearly_constant_as_keys_grow():
    lengths = [64, 256, 1024, 4096]
    standard = [_mean_entropy(lambda n, d: 1 / math.sqrt(d), n) for n in lengths]
    invariant = [_mean_entropy(lambda n, d: LF.entropy_invariant_scale(n, d), n) for n in lengths]
    assert standard[-1] - standard[0] > 1.5  # grows with log n (log 64 = 4.2 nats of uniform growth)
    assert max(invariant) - min(invariant) < 0.2
    # Near-uniform attention (scores of standard deviation 1): log n scaling barely changes the
    # growth (entropy ~ log n - lambda^2 d / 2), as the Laplace derivation assumes sharp attention.
    weak_std = [_mean_entropy(lambda n, d: 1 / math.sqrt(d), n, radius2=1.0) for n in (64, 4096)]
    weak_inv = [
        _mean_entropy(lambda n, d: LF.entropy_invariant_scale(n, d), n, radius2=1.0) for n in (64, 4096)
    ]
    assert 0.7 < (weak_inv[1] - weak_inv[0]) / (weak_std[1] - weak_std[0]) < 1.0


def test_flatter_below_and_sharper_above_the_base_length():
    q, k, _v = _qkv(batch=(1,), length=4, keys=50, seed=7)
    entropy = []
    for base in (10.0, 50.0, 250.0):
        lam = LF.entropy_invariant_scale(50, 4, base_length=base)
        p = torch.softmax(lam * q @ k.transpose(-1, -2), -1)
        entropy.append(float(-(p * torch.log(p)).sum(-1).mean()))
    assert entropy[0] < entropy[1] < entropy[2]  # n > b sharper, n < b flatter


# ---------------------------------------------------------------------------------------------
# nn.MultiheadAttention-compatible module
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("extras", [{}, {"add_bias_kv": True, "add_zero_attn": True, "kdim": 6, "vdim": 5}])
@pytest.mark.parametrize("need_weights", [True, False])
def test_module_equals_multihead_attention_at_the_base_length(batch_first, extras, need_weights):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, **extras).double().eval()
    keys = 7
    base = keys + 2 * bool(extras)  # add_bias_kv and add_zero_attn add one key each
    ours = LN.EntropyInvariantMultiheadAttention.from_multihead_attention(mha, base_length=base)
    q = torch.randn(2, 4, 8, dtype=torch.float64)
    k = torch.randn(2, keys, extras.get("kdim", 8), dtype=torch.float64)
    v = torch.randn(2, keys, extras.get("vdim", 8), dtype=torch.float64)
    if not batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    for average in (True, False):
        expected = mha(q, k, v, need_weights=need_weights, average_attn_weights=average)
        actual = ours(q, k, v, need_weights=need_weights, average_attn_weights=average)
        torch.testing.assert_close(actual[0], expected[0], rtol=1e-12, atol=1e-12)
        if need_weights:
            torch.testing.assert_close(actual[1], expected[1], rtol=1e-12, atol=1e-12)
        else:
            assert actual[1] is None


def test_module_unbatched_and_state_dict():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2).eval()
    ours = LN.EntropyInvariantMultiheadAttention(8, 2, base_length=6).eval()
    ours.load_state_dict(mha.state_dict())
    x = torch.randn(6, 8)
    out, weights = ours(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, mha(x, x, x)[0])
    assert weights.shape == (2, 6, 6)
    assert "base_length=6" in repr(ours)


@pytest.mark.parametrize("float_masks", [False, True])
def test_module_masks_match_oracle(float_masks):
    torch.manual_seed(2)
    module = LN.EntropyInvariantMultiheadAttention(8, 2, batch_first=True, base_length=3).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # True = ignore
    attn = torch.zeros(5, 5, dtype=torch.bool)
    attn[0, 1:] = True  # query 0 may only see key 0
    kpm, am = padding, attn
    if float_masks:
        kpm = torch.zeros(2, 5, dtype=torch.float64).masked_fill(padding, float("-inf"))
        am = torch.zeros(5, 5, dtype=torch.float64).masked_fill(attn, float("-inf"))
    out, weights = module(x, x, x, key_padding_mask=kpm, attn_mask=am, average_attn_weights=False)
    out2, _ = module(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=False)
    torch.testing.assert_close(out2, out, rtol=1e-12, atol=1e-12)
    # Oracle: per head, projections by hand.
    w_q, w_k, w_v = module.in_proj_weight.detach().chunk(3)
    b_q, b_k, b_v = module.in_proj_bias.detach().chunk(3)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        per_batch = []
        for n in range(2):
            visible = ~(padding[n][None, :] | attn)
            q = x[n] @ w_q[sl].T + b_q[sl]
            k = x[n] @ w_k[sl].T + b_k[sl]
            v = x[n] @ w_v[sl].T + b_v[sl]
            per_batch.append(torch.from_numpy(ref.attention(q, k, v, visible.numpy(), base=3)))
        heads.append(torch.stack(per_batch))
    concat = torch.cat(heads, -1)
    expected = concat @ module.out_proj.weight.detach().T + module.out_proj.bias.detach()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-10, atol=1e-12)
    assert (weights[1, :, :, 3:] == 0).all() and torch.allclose(
        weights.sum(-1), torch.ones(2, 2, 5, dtype=torch.float64)
    )


def test_module_causal_flag_and_dropout():
    torch.manual_seed(3)
    module = LN.EntropyInvariantMultiheadAttention(8, 2, dropout=0.5, batch_first=True, base_length=4)
    x = torch.randn(2, 4, 8)
    module.eval()
    a, w = module(x, x, x, is_causal=True)
    causal = ~torch.ones(4, 4, dtype=torch.bool).tril()
    b, _ = module(x, x, x, attn_mask=causal)
    torch.testing.assert_close(a, b)
    assert (w.triu(1) == 0).all()
    module.train()
    assert not torch.allclose(module(x, x, x)[0], module(x, x, x)[0])


# ---------------------------------------------------------------------------------------------
# Autograd, compile, dtypes, bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "bool", "causal", "float+causal"])
def test_gradcheck(kind):
    q, k, v = (t.requires_grad_() for t in _qkv(batch=(1,), length=3, keys=4, dim=2, seed=8))
    mask = None
    if kind == "bool":
        mask = torch.tensor([[True, True, False, True], [True, False, False, False], [False] * 4])
    if kind == "float+causal":
        mask = torch.tensor([[0.5, -1.0, 0.0, float("-inf")]] * 3, dtype=torch.float64)

    def fn(q, k, v):
        return LF.entropy_invariant_attention(
            q, k, v, attn_mask=mask, is_causal="causal" in kind, base_length=3
        )

    assert_gradcheck(fn, q, k, v, gradgrad=kind == "bool")


def test_module_gradcheck():
    torch.manual_seed(4)
    module = LN.EntropyInvariantMultiheadAttention(4, 2, batch_first=True, base_length=5).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    padding = torch.tensor([[False, False, True]])
    assert_gradcheck(lambda x: module(x, x, x, key_padding_mask=padding)[0], x)


def test_compiles():
    q, k, v = (t.requires_grad_() for t in _qkv(batch=(2,), length=4, keys=4, dim=4, dtype=torch.float32))
    mask = torch.tensor([[True, True, False, True]] * 4)

    def fn(q, k, v):
        return LF.entropy_invariant_attention(q, k, v, attn_mask=mask, is_causal=True, base_length=3)

    assert_compiles(fn, q, k, v)
    assert_compiles(lambda q, k, v: LF.entropy_invariant_attention(q, k, v, base_length=3), q, k, v)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtypes(dtype):
    q, k, v = _qkv(length=4, keys=6, seed=9)
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    expected = LF.entropy_invariant_attention(q, k, v, attn_mask=mask, is_causal=True, base_length=4)
    out = LF.entropy_invariant_attention(
        q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask, is_causal=True, base_length=4
    )
    assert out.dtype == dtype
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.double(), expected, rtol=tol["rtol"] * 5, atol=tol["atol"] * 5)


def test_bad_input():
    q, k, v = _qkv()
    f = LF.entropy_invariant_attention
    assert_raises(ValueError, "head_dim: expected a positive int, got 0", LF.entropy_invariant_scale, 4, 0)
    assert_raises(
        ValueError,
        "base_length: expected a number > 1, got 1",
        LF.entropy_invariant_scale,
        4,
        8,
        base_length=1,
    )
    assert_raises(
        ValueError, "n: expected a non-negative int or a tensor, got -1", LF.entropy_invariant_scale, -1, 8
    )
    assert_raises(
        ValueError,
        "n: expected non-negative values, got -2",
        LF.entropy_invariant_scale,
        torch.tensor([-2]),
        8,
    )
    assert_raises(
        TypeError,
        "n: expected an integer or floating tensor",
        LF.entropy_invariant_scale,
        torch.tensor([True]),
        8,
    )
    assert_raises(TypeError, "query: expected a floating-point tensor", f, q.long(), k, v)
    assert_raises(
        ValueError,
        "key: expected the query's feature size 4 in the last dim, got shape (2, 3, 7, 5)",
        f,
        q,
        torch.randn(2, 3, 7, 5),
        v,
    )
    assert_raises(
        ValueError,
        "value: expected the key's length 7 in dim -2, got shape (2, 3, 6, 3)",
        f,
        q,
        k,
        v[..., :6, :],
    )
    assert_raises(
        ValueError,
        "attn_mask: expected a shape broadcastable to (..., 5, 7) (query length, key length), got (5, 6)",
        f,
        q,
        k,
        v,
        attn_mask=torch.ones(5, 6, dtype=torch.bool),
    )
    assert_raises(
        TypeError,
        "attn_mask: expected a bool or floating tensor, got dtype torch.int64",
        f,
        q,
        k,
        v,
        attn_mask=torch.ones(5, 7, dtype=torch.long),
    )
    assert_raises(
        ValueError, "dropout_p: expected a non-negative finite number, got -0.1", f, q, k, v, dropout_p=-0.1
    )
    assert_raises(
        ValueError,
        "base_length: expected a number > 1, got 0.5",
        LN.EntropyInvariantMultiheadAttention,
        8,
        2,
        base_length=0.5,
    )
    module = LN.EntropyInvariantMultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8)
    assert_raises(
        ValueError,
        "key_padding_mask: expected shape (2, 5), got (2, 4)",
        module,
        x,
        x,
        x,
        key_padding_mask=torch.zeros(2, 4, dtype=torch.bool),
    )
    assert_raises(
        ValueError,
        "attn_mask: expected shape (5, 5) or (4, 5, 5), got (1, 1, 5, 5)",
        module,
        x,
        x,
        x,
        attn_mask=torch.zeros(1, 1, 5, 5, dtype=torch.bool),
    )
