"""logitkit.cross_entropy against torch.nn.functional.cross_entropy (issue #2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import logitkit.functional as LF
from benchmarks.harness import Case, register

SHAPES = [(4096, 1000), (1024, 32000), (256, 128000)]


def _index_inputs(n: int, c: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g).to(device).requires_grad_()
        return {"input": x, "target": torch.randint(0, c, (n,), generator=g).to(device)}

    return setup


def _prob_inputs(n: int, c: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g).to(device).requires_grad_()
        return {"input": x, "target": torch.softmax(torch.randn(n, c, generator=g), 1).to(device)}

    return setup


@register("cross_entropy")
def cases():
    for n, c in SHAPES:
        yield Case(
            "cross_entropy",
            f"index targets ({n}, {c}) f32",
            _index_inputs(n, c),
            ("logitkit.cross_entropy", LF.cross_entropy),
            ("torch.nn.functional.cross_entropy", F.cross_entropy),
        )
    for n, c in SHAPES:

        def ours(input, target):
            return LF.cross_entropy(input, target, label_smoothing=0.1)

        def peer(input, target):
            return F.cross_entropy(input, target, label_smoothing=0.1)

        yield Case(
            "cross_entropy",
            f"index targets + label_smoothing=0.1 ({n}, {c}) f32",
            _index_inputs(n, c),
            ("logitkit.cross_entropy", ours),
            ("torch.nn.functional.cross_entropy", peer),
        )
    for n, c in SHAPES[:2]:
        yield Case(
            "cross_entropy",
            f"probability targets ({n}, {c}) f32",
            _prob_inputs(n, c),
            ("logitkit.cross_entropy", LF.cross_entropy),
            ("torch.nn.functional.cross_entropy", F.cross_entropy),
        )
    n, c = SHAPES[1]

    def ours_t(input, target):
        return LF.cross_entropy(input, target, temperature=2.0)

    def peer_t(input, target):
        return F.cross_entropy(input / 2.0, target)

    yield Case(
        "cross_entropy",
        f"index targets, temperature=2 ({n}, {c}) f32",
        _index_inputs(n, c),
        ("logitkit.cross_entropy", ours_t),
        ("torch: cross_entropy(x / 2)", peer_t),
    )
