"""Objective-shaping losses (issue #5) against torch.nn.functional.cross_entropy, PML and Monte Carlo.

* TaiLr, smooth accuracy / F1, AM-Softmax and the simpler A-Softmax: forward + backward against
  ``torch.nn.functional.cross_entropy`` on the same logits (target: at most 1.5x).
* ``CosineClassifier`` + AM-Softmax against pytorch-metric-learning's ``CosFaceLoss`` (embeddings in,
  the same weight matrix), when that package is installed.
* EXACT's deterministic quadrature against a Monte-Carlo estimate of the same expected accuracy at
  equal accuracy (forward only: the Monte-Carlo arg-max has no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import logitkit.functional as LF
import logitkit.nn as LN
from benchmarks.harness import Case, register

SHAPES = [(4096, 1000), (1024, 32000)]
CE = ("torch.nn.functional.cross_entropy", F.cross_entropy)


def _inputs(n: int, c: int, *, cosines: bool = False):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g)
        if cosines:  # cosines of random directions in a 256-d space
            x = (x / 16).clamp(-1, 1)
        return {
            "input": x.to(device).requires_grad_(),
            "target": torch.randint(0, c, (n,), generator=g).to(device),
        }

    return setup


def _against_ce(name: str, fn, *, cosines: bool = False, peer=CE, notes: str = ""):
    for n, c in SHAPES:
        yield Case(
            "objectives",
            f"{name} ({n}, {c}) f32",
            _inputs(n, c, cosines=cosines),
            (f"logitkit.{name.split(' ')[0]}", fn),
            peer,
            notes=notes,
        )


# ---------------------------------------------------------------------------------------------
# EXACT: quadrature vs Monte Carlo at equal accuracy
# ---------------------------------------------------------------------------------------------

EXACT_SHAPES = [(1024, 10), (256, 100)]
MC_SAMPLES = 4096  # RMS error of a Monte-Carlo probability: sqrt(p (1 - p) / S) <= 0.0078


def exact_monte_carlo(input: torch.Tensor, target: torch.Tensor, *, samples: int = MC_SAMPLES, seed: int = 0):
    """``1 - mean P(argmax(x + eps) = y)`` estimated with ``samples`` Gaussian draws per row."""
    g = torch.Generator(device=input.device).manual_seed(seed)
    n, c = input.shape
    chunk = max(1, (4 << 20) // (n * c))
    hits = torch.zeros(n, device=input.device)
    with torch.no_grad():
        for start in range(0, samples, chunk):
            k = min(chunk, samples - start)
            noise = torch.randn(n, k, c, generator=g, device=input.device)
            hits += ((input.unsqueeze(1) + noise).argmax(2) == target.unsqueeze(1)).sum(1)
    return 1.0 - (hits / samples).mean()


def _exact_inputs(n: int, c: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g) * 2
        return {"input": x.to(device), "target": torch.randint(0, c, (n,), generator=g).to(device)}

    return setup


def _rms_errors(n: int, c: int) -> tuple[dict[int, float], float]:
    """RMS error of per-sample probabilities: Gauss-Hermite with K nodes, and Monte Carlo."""
    inputs = _exact_inputs(n, c)("cpu")
    x, y = inputs["input"].double(), inputs["target"]
    exact = 1 - LF.exact_loss(x, y, nodes=200, reduction="none")
    errors = {}
    for k in (2, 4, 8, 16, 32):
        approx = 1 - LF.exact_loss(x, y, nodes=k, reduction="none")
        errors[k] = (approx - exact).pow(2).mean().sqrt().item()
    mc_std = (exact * (1 - exact) / MC_SAMPLES).mean().sqrt().item()
    return errors, mc_std


def _exact_cases():
    for n, c in EXACT_SHAPES:
        errors, mc_rms = _rms_errors(n, c)
        nodes = min((k for k, e in errors.items() if e <= mc_rms), default=32)

        def ours(input, target, nodes=nodes):
            return LF.exact_loss(input, target, nodes=nodes)

        def peer(input, target):
            return exact_monte_carlo(input, target)

        yield Case(
            "objectives",
            f"exact_loss, equal accuracy: K={nodes} vs {MC_SAMPLES} samples ({n}, {c}) f32",
            _exact_inputs(n, c),
            (f"logitkit.exact_loss(nodes={nodes})", ours),
            (f"Monte Carlo, {MC_SAMPLES} samples", peer),
            backward=False,
            notes=f"RMS error of p: quadrature K={nodes} {errors[nodes]:.1e}, Monte Carlo {mc_rms:.1e}",
        )

        yield Case(
            "objectives",
            f"exact_loss, default K=32 vs {MC_SAMPLES} samples ({n}, {c}) f32",
            _exact_inputs(n, c),
            ("logitkit.exact_loss(nodes=32)", lambda input, target: LF.exact_loss(input, target)),
            (f"Monte Carlo, {MC_SAMPLES} samples", lambda input, target: exact_monte_carlo(input, target)),
            backward=False,
            notes=(
                f"RMS error of p: quadrature K=32 {errors[32]:.1e}; Monte Carlo would need about "
                f"{MC_SAMPLES * (mc_rms / max(errors[32], 1e-12)) ** 2:.0e} samples for it"
            ),
        )


# ---------------------------------------------------------------------------------------------
# AM-Softmax with its head against pytorch-metric-learning's CosFace
# ---------------------------------------------------------------------------------------------


def _cosface_cases():
    try:
        from pytorch_metric_learning.losses import CosFaceLoss
    except ImportError:  # optional peer
        return
    n, d, c = 4096, 256, 1000

    def setup(device: str):
        torch.manual_seed(0)
        head = LN.CosineClassifier(d, c).to(device)
        pml = CosFaceLoss(num_classes=c, embedding_size=d, margin=0.35, scale=30).to(device)
        with torch.no_grad():
            pml.W.copy_(head.weight.T)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=g).to(device).requires_grad_()
        y = torch.randint(0, c, (n,), generator=g).to(device)
        return {"input": x, "target": y, "head": head, "pml": pml}

    def ours(input, target, head, pml):
        return LF.am_softmax_loss(head(input), target)

    def peer(input, target, head, pml):
        return pml(input, target)

    yield Case(
        "objectives",
        f"CosineClassifier + am_softmax_loss, embeddings ({n}, {d}) -> {c} classes f32",
        setup,
        ("logitkit.nn.CosineClassifier + am_softmax_loss", ours),
        ("pytorch_metric_learning.losses.CosFaceLoss", peer),
        notes="same weight matrix; gradients flow to the embeddings and the class weights",
    )


@register("objectives")
def cases():
    yield from _against_ce(
        "tailr_loss gamma=0.1", lambda input, target: LF.tailr_loss(input, target, gamma=0.1)
    )
    yield from _against_ce(
        "tailr_loss weighted gamma=0.1 min_weight=0.2",
        lambda input, target: LF.tailr_loss(input, target, gamma=0.1, min_weight=0.2, form="weighted"),
    )

    def ce_smooth(input, target):
        return F.cross_entropy(input, target, label_smoothing=0.1)

    yield from _against_ce(
        "tailr_loss gamma=0.1 label_smoothing=0.1",
        lambda input, target: LF.tailr_loss(input, target, gamma=0.1, label_smoothing=0.1),
        peer=("torch.nn.functional.cross_entropy(label_smoothing=0.1)", ce_smooth),
        notes="every class term is a TaiLr term: one logarithm per logit",
    )
    yield from _against_ce("smooth_accuracy_loss", LF.smooth_accuracy_loss)
    yield from _against_ce(
        "smooth_accuracy_loss log=True",
        lambda input, target: LF.smooth_accuracy_loss(input, target, log=True),
    )
    yield from _against_ce("smooth_f1_loss macro", LF.smooth_f1_loss)
    yield from _against_ce(
        "am_softmax_loss",
        LF.am_softmax_loss,
        cosines=True,
        notes="includes the check that the input holds cosines (a pass over the input)",
    )
    yield from _against_ce("simpler_a_softmax_loss", LF.simpler_a_softmax_loss, cosines=True)
    yield from _cosface_cases()
    yield from _exact_cases()
