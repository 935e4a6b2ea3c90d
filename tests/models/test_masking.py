"""MLM / MAE dropout view: embedding correction, DropToken, key masking (spec: models_and_posthoc.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import logitkit.functional as LF
from tests.helpers import FLOAT_DTYPES, TOLERANCE, assert_compiles, assert_gradcheck, assert_raises
from tests.reference import masking as ref

# ---------------------------------------------------------------------------------------------
# mlm_consistent_embeddings
# ---------------------------------------------------------------------------------------------


def test_bert_defaults_are_the_stated_affine_combination():
    # Spec §4.2 [derived]: 0.865 E_i + 0.12 E_[MASK] + 0.015 mean(E).
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(10, 4, generator=g, dtype=torch.float64)
    out = LF.mlm_consistent_embeddings(weight, 3)
    expected = 0.865 * weight + 0.12 * weight[3] + 0.015 * weight.mean(0)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # An affine combination: a constant embedding stays constant.
    const = torch.ones(10, 4, dtype=torch.float64) * 2.5
    torch.testing.assert_close(LF.mlm_consistent_embeddings(const, 3), const)


@pytest.mark.parametrize(
    ("rate", "probs", "special", "random_ids"),
    [
        (0.15, (0.8, 0.1, 0.1), (), None),
        (0.4, (0.5, 0.2, 0.3), (0, 3), None),
        (1.0, (0.0, 0.0, 1.0), (1,), (2, 4, 5)),
    ],
)
def test_matches_oracle(rate, probs, special, random_ids):
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(7, 3, generator=g, dtype=torch.float64)
    out = LF.mlm_consistent_embeddings(
        weight,
        3,
        mask_rate=rate,
        mask_token_prob=probs[0],
        keep_prob=probs[1],
        random_prob=probs[2],
        special_ids=list(special) or None,
        random_ids=random_ids,
    )
    expected = ref.mlm_embeddings(weight.numpy(), 3, rate, *probs, special, random_ids)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    for i in special:
        assert torch.equal(out[i], weight[i])


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_property_rows_move_towards_the_expected_input(rate, a, b):
    total = a + b + 1.0
    p_mask, p_keep, p_random = a / total, b / total, 1.0 / total
    p_random = 1.0 - p_mask - p_keep
    weight = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = LF.mlm_consistent_embeddings(
        weight, 0, mask_rate=rate, mask_token_prob=p_mask, keep_prob=p_keep, random_prob=p_random
    )
    # E_i' - E_i = r (p_mask (E_m - E_i) + p_random (mean - E_i)): only the corrupted share moves.
    delta = rate * (p_mask * (weight[0] - weight) + p_random * (weight.mean(0) - weight))
    torch.testing.assert_close(out - weight, delta, rtol=1e-9, atol=1e-12)


def test_expectation_of_the_sampled_corruption():
    # The correction is the average input embedding under MLM's corruption of one token.
    g = torch.Generator().manual_seed(3)
    vocab, hidden, token, mask_id = 5, 3, 2, 4
    weight = torch.randn(vocab, hidden, generator=g, dtype=torch.float64)
    n = 200_000
    chosen = torch.rand(n, generator=g) < 0.15
    action = torch.rand(n, generator=g)
    random_token = torch.randint(0, vocab, (n,), generator=g)
    ids = torch.full((n,), token)
    ids = torch.where(chosen & (action < 0.8), mask_id, ids)
    ids = torch.where(chosen & (action >= 0.9), random_token, ids)
    empirical = weight[ids].mean(0)
    torch.testing.assert_close(
        LF.mlm_consistent_embeddings(weight, mask_id)[token], empirical, rtol=0, atol=0.01
    )


def test_mlm_gradcheck_compile_and_dtypes():
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda w: LF.mlm_consistent_embeddings(w, 1, special_ids=[0]), weight, gradgrad=True)
    assert_compiles(
        lambda w: LF.mlm_consistent_embeddings(w, 1, special_ids=[0, 5]),
        weight.float().detach().requires_grad_(),
    )
    expected = LF.mlm_consistent_embeddings(weight.detach(), 1, special_ids=[0])
    for dtype in FLOAT_DTYPES:
        out = LF.mlm_consistent_embeddings(weight.detach().to(dtype), 1, special_ids=[0])
        assert out.dtype == dtype
        ref_q = LF.mlm_consistent_embeddings(weight.detach().to(dtype).double(), 1, special_ids=[0])
        torch.testing.assert_close(out.double(), ref_q, **TOLERANCE[dtype])
        assert torch.allclose(out.double(), expected, atol=0.05)


def test_mlm_bad_input():
    w = torch.randn(5, 2)
    f = LF.mlm_consistent_embeddings
    assert_raises(ValueError, "mask_id: expected an int in [0, 5), got 5", f, w, 5)
    assert_raises(ValueError, "mask_rate: expected a probability in [0, 1], got 1.5", f, w, 0, mask_rate=1.5)
    assert_raises(
        ValueError,
        "mask_token_prob + keep_prob + random_prob: expected a sum of 1, got 0.8 + 0.1 + 0.2",
        f,
        w,
        0,
        random_prob=0.2,
    )
    assert_raises(
        ValueError,
        "special_ids: expected token ids in [0, 5), got values in [1, 9]",
        f,
        w,
        0,
        special_ids=[1, 9],
    )
    assert_raises(
        TypeError,
        "special_ids: expected a sequence or 1-D tensor of int token ids",
        f,
        w,
        0,
        special_ids=[0.5],
    )
    assert_raises(ValueError, "random_ids: expected at least one token id, got none", f, w, 0, random_ids=[])
    assert_raises(
        ValueError,
        "embedding_weight: expected a non-empty (vocab_size, hidden) matrix, got shape (5,)",
        f,
        w[:, 0],
        0,
    )
    assert_raises(TypeError, "embedding_weight: expected a floating-point tensor", f, w.long(), 0)


# ---------------------------------------------------------------------------------------------
# drop_tokens
# ---------------------------------------------------------------------------------------------


def _batch(seed=0, n=4, length=12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (n, length), generator=g)
    ids[:, 0] = 1  # [CLS]
    lengths = torch.tensor([12, 9, 5, 12])[:n]
    mask = torch.arange(length) < lengths[:, None]
    ids = ids.masked_fill(~mask, 0)
    ids[torch.arange(n), lengths - 1] = 2  # [SEP]
    return ids, mask


def test_kept_tokens_keep_their_positions_and_order():
    ids, mask = _batch()
    positions = torch.arange(12).expand(4, 12) + 100
    out = LF.drop_tokens(
        ids, positions, 0.4, attention_mask=mask, keep_ids=[1, 2], generator=torch.Generator().manual_seed(1)
    )
    for row in range(4):
        kept = out.attention_mask[row]
        cols = out.index[row][kept]
        assert (cols.diff() > 0).all()  # original order
        assert torch.equal(out.input_ids[row][kept], ids[row, cols])
        assert torch.equal(out.position_ids[row][kept], positions[row, cols])
        assert (out.input_ids[row][~kept] == 0).all() and (out.position_ids[row][~kept] == 0).all()
        assert mask[row, cols].all()  # padding is never kept
        specials = ((ids[row] == 1) | (ids[row] == 2)) & mask[row]
        assert set(torch.nonzero(specials).flatten().tolist()) <= set(cols.tolist())
    assert out.input_ids.shape[1] == int(out.attention_mask.sum(1).max()) < 12


def test_rates_and_inference():
    ids, mask = _batch()
    same = LF.drop_tokens(ids, None, 0.0, attention_mask=mask)
    assert torch.equal(same.input_ids, ids) and torch.equal(same.attention_mask, mask)
    assert torch.equal(same.position_ids, torch.arange(12).expand(4, 12) * mask)
    off = LF.drop_tokens(ids, None, 0.9, attention_mask=mask, training=False)
    assert torch.equal(off.input_ids, ids)
    everything = LF.drop_tokens(ids, None, 1.0, attention_mask=mask, keep_ids=[1, 2])
    assert everything.input_ids.shape[1] == 2 and (everything.input_ids[:, 0] == 1).all()
    # Left padding is compacted to right padding.
    left = torch.tensor([[0, 0, 7, 8]])
    out = LF.drop_tokens(left, None, 0.0, attention_mask=torch.tensor([[0, 0, 1, 1]]))
    assert out.input_ids.tolist() == [[7, 8]] and out.position_ids.tolist() == [[2, 3]]


def test_drop_fraction_and_reproducibility():
    ids = torch.arange(20_000).view(100, 200) + 5
    out = LF.drop_tokens(ids, None, 0.15, generator=torch.Generator().manual_seed(4))
    kept = out.attention_mask.sum().item() / ids.numel()
    assert abs(kept - 0.85) < 0.01
    again = LF.drop_tokens(ids, None, 0.15, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.input_ids, again.input_ids)


@given(st.integers(0, 1000), st.floats(0, 1))
def test_property_compaction_is_a_sorted_selection(seed, rate):
    ids, mask = _batch(seed)
    out = LF.drop_tokens(ids, None, rate, attention_mask=mask, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(out.input_ids * out.attention_mask, ids.gather(1, out.index) * out.attention_mask)
    assert (out.attention_mask.sum(1) <= mask.sum(1)).all()
    assert out.attention_mask.dtype == torch.bool
    # Kept slots come first in every row.
    assert (out.attention_mask.int().diff(dim=1) <= 0).all()


def test_drop_tokens_bad_input():
    ids, mask = _batch()
    f = LF.drop_tokens
    assert_raises(
        ValueError, "input_ids: expected a 2-D integer tensor (N, L), got shape (12,)", f, ids[0], None, 0.1
    )
    assert_raises(ValueError, "drop_rate: expected a probability in [0, 1], got -0.1", f, ids, None, -0.1)
    assert_raises(
        ValueError,
        "position_ids: expected an integer tensor of shape (4, 12) or (12,), got shape (4, 11)",
        f,
        ids,
        ids[:, :11],
        0.1,
    )
    assert_raises(
        ValueError,
        "attention_mask: expected a bool or 0/1 integer tensor of shape (4, 12), got shape (4, 11)",
        f,
        ids,
        None,
        0.1,
        attention_mask=mask[:, :11],
    )


# ---------------------------------------------------------------------------------------------
# MAE: key masking equals removing the tokens
# ---------------------------------------------------------------------------------------------


def test_renormalised_column_mask_is_softmax_with_masked_keys():
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(6, 6, generator=g, dtype=torch.float64)
    keep = torch.tensor([True, False, True, True, False, True])
    attn = torch.softmax(scores, -1)
    expected = ref.renormalised_column_mask(attn.numpy(), keep.numpy())
    masked = torch.softmax(scores.masked_fill(~LF.mae_key_mask(keep[None])[0, 0], float("-inf")), -1)
    np.testing.assert_allclose(masked[0].numpy(), expected[0], rtol=1e-12)
    np.testing.assert_allclose(masked.numpy(), expected, rtol=1e-12, atol=1e-15)
    # "Dropout off": the expected column mask is p everywhere and Norm(p A) = A.
    np.testing.assert_allclose(
        ref.renormalised_column_mask(0.25 * attn.numpy(), [True] * 6), attn.numpy(), rtol=1e-12
    )


class _Encoder(nn.Module):
    """Two pre-LN transformer layers with learned absolute positions; attention via ``attend``."""

    def __init__(self, attend, dim=8, heads=2, vocab=100, max_len=16):
        super().__init__()
        self.attend, self.heads = attend, heads
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(max_len, dim)
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * dim) for _ in range(2))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, dim)) for _ in range(2)
        )
        self.norm1 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.norm2 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))

    def forward(self, ids, positions, keep):
        h = self.tok(ids) + self.pos(positions)
        n, length, dim = h.shape
        for layer in range(2):
            q, k, v = self.qkv[layer](self.norm1[layer](h)).chunk(3, -1)
            q, k, v = (t.view(n, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
            a = self.attend(q, k, v, LF.mae_key_mask(keep)).transpose(1, 2).reshape(n, length, dim)
            h = h + a
            h = h + self.ffn[layer](self.norm2[layer](h))
        return h


@pytest.mark.parametrize(
    "attend",
    [
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
        lambda q, k, v, m: LF.entropy_invariant_attention(q, k, v, attn_mask=m, base_length=6),
    ],
    ids=["sdpa", "entropy_invariant"],
)
def test_key_masking_in_every_layer_equals_removing_the_tokens(attend):
    torch.manual_seed(6)
    encoder = _Encoder(attend).double().eval()
    ids, mask = _batch(seed=7)
    dropped = LF.drop_tokens(ids, None, 0.5, attention_mask=mask, generator=torch.Generator().manual_seed(8))
    keep = torch.zeros_like(mask).scatter(1, dropped.index, dropped.attention_mask)  # the kept originals
    full = encoder(ids, torch.arange(12).expand(4, 12), keep)
    short = encoder(dropped.input_ids, dropped.position_ids, dropped.attention_mask)
    for row in range(4):
        kept = dropped.attention_mask[row]
        torch.testing.assert_close(
            full[row, dropped.index[row][kept]], short[row][kept], rtol=1e-10, atol=1e-12
        )


def test_multihead_attention_key_padding_mask_form():
    torch.manual_seed(9)
    layer = (
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, dropout=0.0).double().eval()
    )
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    keep = torch.tensor([[True, False, True, True, False, True]])
    full = layer(x, src_key_padding_mask=~keep)
    short = layer(x[:, keep[0]])
    torch.testing.assert_close(full[:, keep[0]], short, rtol=1e-10, atol=1e-12)


def test_mae_key_mask_bad_input():
    assert_raises(
        ValueError,
        "keep: expected a 2-D bool tensor (N, L), got shape (3,) and dtype torch.bool",
        LF.mae_key_mask,
        torch.ones(3, dtype=torch.bool),
    )
    assert_raises(
        ValueError,
        "keep: expected a 2-D bool tensor (N, L), got shape (1, 3) and dtype torch.int64",
        LF.mae_key_mask,
        torch.ones(1, 3, dtype=torch.long),
    )
