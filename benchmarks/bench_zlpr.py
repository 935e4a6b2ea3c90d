"""logitkit.zlpr_loss / sparse_zlpr_loss against torch's CE and BCE and the naive composition (issue #3).

The naive composition and the subtraction form of the sparse loss are written here from the spec
(losses.md §1.3, §1.6), as the code a user would otherwise write: they are the peers, not library
code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import logitkit.functional as LF
from benchmarks.harness import Case, register

SHAPES = [(4096, 1000), (1024, 32000), (256, 128000)]
POSITIVES = 5


def naive_zlpr(input, target):
    """Sign flip, masked fills and two log-sum-exps with an appended zero column (mean over rows)."""
    positive = target.bool()
    flipped = (1 - 2 * target) * input
    negatives = flipped.masked_fill(positive, float("-inf"))
    positives = flipped.masked_fill(~positive, float("-inf"))
    zero = torch.zeros_like(input[:, :1])
    neg = torch.logsumexp(torch.cat([negatives, zero], 1), 1)
    pos = torch.logsumexp(torch.cat([positives, zero], 1), 1)
    return (neg + pos).mean()


def subtraction_sparse_zlpr(input, positives):
    """The index form as in bert4keras: positives gathered, the negative term as the full
    log-sum-exp minus the positives' share, clipped (spec §1.6; no padding in this benchmark)."""
    zero = torch.zeros_like(input[:, :1])
    picked = input.gather(1, positives)
    pos = torch.logsumexp(torch.cat([-picked, zero], 1), 1)
    total = torch.logsumexp(torch.cat([input, zero], 1), 1)
    aux = torch.logsumexp(picked, 1) - total
    neg = total + torch.log(torch.clamp(1 - torch.exp(aux), 1e-7, 1))
    return (pos + neg).mean()


def _dense_inputs(n: int, c: int, smoothing: float = 0.0):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g).to(device).requires_grad_()
        labels = torch.randint(0, c, (n, POSITIVES), generator=g)
        target = torch.zeros(n, c).scatter_(1, labels, 1.0)
        if smoothing:
            target = target * (1 - smoothing) + smoothing / 2
        index = labels[:, 0].clone()
        return {"input": x, "target": target.to(device), "index": index.to(device)}

    return setup


def _sparse_inputs(n: int, c: int, p: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g).to(device).requires_grad_()
        positives = torch.stack([torch.randperm(c, generator=g)[:p] for _ in range(n)])
        return {"input": x, "positives": positives.to(device)}

    return setup


def ours(input, target, index):
    return LF.zlpr_loss(input, target)


def torch_ce(input, target, index):
    return F.cross_entropy(input, index)


def torch_bce(input, target, index):
    return F.binary_cross_entropy_with_logits(input, target)


def naive(input, target, index):
    return naive_zlpr(input, target)


@register("zlpr")
def cases():
    ours_name = "logitkit.zlpr_loss"
    for n, c in SHAPES:
        setup = _dense_inputs(n, c)
        label = f"({n}, {c}) f32, {POSITIVES} positives/row"
        yield Case(
            "zlpr",
            f"vs CE {label}",
            setup,
            (ours_name, ours),
            ("torch.nn.functional.cross_entropy (index targets)", torch_ce),
        )
        yield Case(
            "zlpr",
            f"vs BCE {label}",
            setup,
            (ours_name, ours),
            ("torch.nn.functional.binary_cross_entropy_with_logits", torch_bce),
        )
        yield Case(
            "zlpr",
            f"vs naive {label}",
            setup,
            (ours_name, ours),
            ("naive composition (sign flip, masked_fill, 2x logsumexp)", naive),
        )
    n, c = SHAPES[1]
    yield Case(
        "zlpr",
        f"soft labels (smoothing 0.1) vs BCE ({n}, {c}) f32",
        _dense_inputs(n, c, smoothing=0.1),
        (ours_name, ours),
        ("torch.nn.functional.binary_cross_entropy_with_logits", torch_bce),
    )
    yield Case(
        "zlpr",
        "sparse (64, 1000000) f32, P=20",
        _sparse_inputs(64, 1_000_000, 20),
        ("logitkit.sparse_zlpr_loss", LF.sparse_zlpr_loss),
        ("subtraction form (bert4keras-style, clipped)", subtraction_sparse_zlpr),
    )
