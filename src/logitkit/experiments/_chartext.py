"""A small transformer encoder (pre-LN, RoPE) and tokenisers shared by the text experiments.

Attention is either standard scaled dot-product attention (:math:`1/\\sqrt d`) or the
entropy-invariant scale of :func:`logitkit.models.attention.entropy_invariant_attention`
(:math:`\\log_b n/\\sqrt d`, ``n`` = keys each query sees). Rotary position embeddings take explicit
position ids, so DropToken's compacted batches keep their original positions.
"""

from __future__ import annotations

import collections
import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from logitkit.models.attention import entropy_invariant_attention

PAD, MASK, UNK = 0, 1, 2
SPECIALS = ("<pad>", "<mask>", "<unk>")


def load_corpus(dataset: str):
    """A registry text corpus (task ``"text"``); other datasets are refused with a clear message."""
    from logitkit import data

    info = data.get(dataset)
    if info.task != "text":
        texts = sorted(name for name in data.names() if data.get(name).task == "text")
        raise ValueError(f"dataset: expected a text corpus ({', '.join(texts)}), got {dataset!r}")
    return info.load()


class CharVocab:
    """Characters seen at least ``min_count`` times in the training text, after three specials."""

    def __init__(self, text: str, min_count: int = 20) -> None:
        counts = collections.Counter(text)
        chars = sorted(c for c, n in counts.items() if n >= min_count)
        self.itos = list(SPECIALS) + chars
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> Tensor:
        return torch.tensor([self.stoi.get(c, UNK) for c in text], dtype=torch.long)


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _WORD.findall(text.lower())


class WordVocab:
    """The ``size`` most frequent training words (seen at least ``min_count`` times), after three specials."""

    def __init__(self, tokens: list[str], size: int = 8000, min_count: int = 3) -> None:
        counts = collections.Counter(tokens)
        common = [w for w, n in counts.most_common(size) if n >= min_count]
        self.itos = list(SPECIALS) + common
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> Tensor:
        return torch.tensor([self.stoi.get(w, UNK) for w in tokens], dtype=torch.long)


def rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding of ``x`` ``(N, H, L, D)`` at integer ``positions`` ``(N, L)`` (rotate-half form)."""
    half = x.shape[-1] // 2
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    freq = 10000.0 ** (-torch.arange(half, dtype=dtype, device=x.device) / half)
    angle = positions[:, None, :, None].to(dtype) * freq  # (N, 1, L, half)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, scale: str, base_length: float) -> None:
        super().__init__()
        self.heads, self.scale, self.base_length = heads, scale, base_length
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: Tensor, positions: Tensor, key_mask: Tensor | None) -> Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = rope(q, positions), rope(k, positions)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if self.scale == "entropy":
            a = entropy_invariant_attention(q, k, v, attn_mask=mask, base_length=self.base_length)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(n, length, dim))
        return x + self.ffn(self.norm2(x))


class CharEncoder(nn.Module):
    """Embedding -> ``layers`` pre-LN blocks with RoPE -> final LayerNorm; ``(N, L)`` ids -> ``(N, L, d)``."""

    def __init__(
        self,
        vocab: int,
        *,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        ffn: int = 512,
        scale: str = "standard",
        base_length: float = 512,
    ) -> None:
        super().__init__()
        if scale not in ("standard", "entropy"):
            raise ValueError(f"scale: expected 'standard' or 'entropy', got {scale!r}")
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, ffn, scale, base_length) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor, positions: Tensor | None = None, key_mask: Tensor | None = None) -> Tensor:
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, positions, key_mask)
        return self.norm(x)


def warmup_linear(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def mlm_corrupt(ids: Tensor, vocab: int, rate: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """BERT masking: choose ``rate`` of the positions; of those 80 % -> <mask>, 10 % random, 10 % kept.

    Returns the corrupted ids and the boolean target mask (the chosen positions).
    """
    u = torch.rand(ids.shape, generator=generator)
    chosen = u < rate
    r = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(len(SPECIALS), vocab, ids.shape, generator=generator)
    corrupted = torch.where(chosen & (r < 0.8), MASK, ids)
    corrupted = torch.where(chosen & (r >= 0.8) & (r < 0.9), random_ids, corrupted)
    return corrupted, chosen


def entropy_vs_length(lengths, dim: int = 32, *, base_length: float = 512, samples: int = 200, seed: int = 0):
    """Mean attention entropy (nats) of random unit-sphere directions at norm :math:`\\sqrt d` per length.

    Returns ``{"standard": [...], "entropy": [...]}``: one mean entropy per length for the scale
    :math:`1/\\sqrt d` and for :math:`\\log_b n/\\sqrt d`.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"standard": [], "entropy": []}
    for n in lengths:
        q = F.normalize(torch.randn(samples, dim, generator=g, dtype=torch.float64), dim=-1) * math.sqrt(dim)
        k = F.normalize(torch.randn(samples, n, dim, generator=g, dtype=torch.float64), dim=-1) * math.sqrt(
            dim
        )
        scores = torch.einsum("sd,snd->sn", q, k) / math.sqrt(dim)
        for name, factor in (("standard", 1.0), ("entropy", math.log(n) / math.log(base_length))):
            logp = torch.log_softmax(scores * factor, dim=-1)
            out[name].append(float(-(logp.exp() * logp).sum(-1).mean()))
    return out
