"""Imbalance losses and CAN (issue #4) against torch cross-entropy, BCE, kornia and a CAN loop.

The issue's target: forward + backward of each loss within 1.5x of
``torch.nn.functional.cross_entropy`` at (4096, 1000) and (1024, 32000) float32. Losses with
label smoothing or probability targets are compared with torch's cross-entropy given the same
targets; the sigmoid (elementwise) losses are also compared with
``binary_cross_entropy_with_logits`` on the same multi-label targets, their natural peer. CAN is
forward only, on 10,000 x 1,000 probabilities, against the per-row loop of the author's algorithm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import logitkit.functional as LF
from benchmarks.harness import Case, register

SHAPES = [(4096, 1000), (1024, 32000)]
SUITE = "imbalance"


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


def _multilabel_inputs(n: int, c: int, with_labels: bool = False):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=g).to(device).requires_grad_()
        target = (torch.rand(n, c, generator=g) < 0.01).float()  # ~10 positive labels per row at C = 1000
        inputs = {"input": x, "target": target.to(device)}
        if with_labels:  # class indices for the cross-entropy yardstick
            inputs["labels"] = torch.randint(0, c, (n,), generator=g).to(device)
        return inputs

    return setup


def _prior(c: int) -> torch.Tensor:
    counts = torch.exp(-torch.arange(c, dtype=torch.float32) * (4.6 / c)) * 1000  # ratio 100
    return counts / counts.sum()


def _torchvision_sigmoid_focal(input, target, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss's documented formula in eager autograd (torchvision does
    not import beside this CPU torch build)."""
    p = torch.sigmoid(input)
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * ((1 - p_t) ** gamma)
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean()


def _can_loop(probs, prior, top_k=3, threshold=0.9):
    """Per-row CAN: for each uncertain row, stack the confident rows and the row, normalise
    columns to the prior, then rows; keep the last row (the author's algorithm, one iteration)."""
    top = probs.topk(top_k, dim=1).values
    top = top / top.sum(1, keepdim=True)
    ent = -(top * torch.log(top.clamp_min(1e-30))).sum(1) / torch.log(torch.tensor(float(top_k)))
    confident = probs[ent < threshold]
    out = probs.clone()
    for j in torch.nonzero(ent >= threshold).flatten().tolist():
        y = torch.cat([confident, probs[j : j + 1]])
        y = y / y.mean(0, keepdim=True) * prior
        y = y / y.sum(1, keepdim=True)
        out[j] = y[-1]
    return out


def _can_closed_form_loop(probs, prior, top_k=3, threshold=0.9):
    """Per-row loop of the one-iteration closed form: O(C) per row, Python overhead per row."""
    top = probs.topk(top_k, dim=1).values
    top = top / top.sum(1, keepdim=True)
    ent = -(top * torch.log(top.clamp_min(1e-30))).sum(1) / torch.log(torch.tensor(float(top_k)))
    column = probs[ent < threshold].sum(0)
    out = probs.clone()
    for j in torch.nonzero(ent >= threshold).flatten().tolist():
        row = probs[j] * prior / (column + probs[j])
        out[j] = row / row.sum()
    return out


def _can_inputs(n: int, c: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        labels = torch.randint(0, c, (n,), generator=g)
        logits = torch.randn(n, c, generator=g) * 1.5
        logits[torch.arange(n), labels] += 6 + torch.rand(n, generator=g) * 8  # mostly sure rows
        probs = torch.softmax(logits.double(), 1)
        prior = torch.full((c,), 1.0 / c, dtype=torch.float64)
        return {"probs": probs.to(device), "prior": prior.to(device)}

    return setup


def _loss_cases():
    for n, c in SHAPES:
        shape = f"({n}, {c}) f32"
        index, probs, multi = _index_inputs(n, c), _prob_inputs(n, c), _multilabel_inputs(n, c)
        ce = ("torch.nn.functional.cross_entropy", F.cross_entropy)
        prior = _prior(c)

        def ce_smooth(input, target):
            return F.cross_entropy(input, target, label_smoothing=0.1)

        yield Case(
            SUITE, f"focal_loss gamma=2, index targets {shape}", index, ("focal_loss", LF.focal_loss), ce
        )
        yield Case(
            SUITE,
            f"focal_loss gamma=0.5, index targets {shape}",
            index,
            ("focal_loss", lambda input, target: LF.focal_loss(input, target, gamma=0.5)),
            ce,
        )
        yield Case(
            SUITE,
            f"focal_loss gamma=2, label_smoothing=0.1 {shape}",
            index,
            ("focal_loss", lambda input, target: LF.focal_loss(input, target, label_smoothing=0.1)),
            ("torch cross_entropy, label_smoothing=0.1", ce_smooth),
        )
        yield Case(
            SUITE,
            f"focal_loss gamma=0.5, label_smoothing=0.1 {shape}",
            index,
            (
                "focal_loss",
                lambda input, target: LF.focal_loss(input, target, gamma=0.5, label_smoothing=0.1),
            ),
            ("torch cross_entropy, label_smoothing=0.1", ce_smooth),
        )
        yield Case(
            SUITE,
            f"focal_loss gamma=2, probability targets {shape}",
            probs,
            ("focal_loss", LF.focal_loss),
            ce,
        )
        try:
            import kornia.losses as KL
        except ImportError:  # kornia is optional
            KL = None
        if KL is not None:
            yield Case(
                SUITE,
                f"focal_loss gamma=2 vs kornia, index targets {shape}",
                index,
                ("focal_loss (sum)", lambda input, target: LF.focal_loss(input, target, reduction="sum")),
                (
                    "kornia.losses.focal_loss (sum)",
                    lambda input, target, KL=KL: KL.focal_loss(input, target, None, 2.0, reduction="sum"),
                ),
            )
        yield Case(
            SUITE,
            f"truncated_cross_entropy margin=0.5, index targets {shape}",
            index,
            ("truncated_cross_entropy", LF.truncated_cross_entropy),
            ce,
        )
        yield Case(
            SUITE,
            f"softened_cross_entropy K=1, index targets {shape}",
            index,
            ("softened_cross_entropy", LF.softened_cross_entropy),
            ce,
        )
        yield Case(
            SUITE,
            f"logit_adjusted_cross_entropy tau=1, index targets {shape}",
            index,
            (
                "logit_adjusted_cross_entropy",
                lambda input, target, prior=prior: LF.logit_adjusted_cross_entropy(
                    input, target, prior=prior
                ),
            ),
            ce,
        )
        yield Case(
            SUITE,
            f"sigmoid_focal_loss gamma=2 vs CE, {shape}",
            _multilabel_inputs(n, c, with_labels=True),
            ("sigmoid_focal_loss", lambda input, target, labels: LF.sigmoid_focal_loss(input, target)),
            (
                "torch cross_entropy, index targets, same logits",
                lambda input, target, labels: F.cross_entropy(input, labels),
            ),
            notes="the issue's yardstick for every loss; an elementwise loss against a fused softmax one",
        )
        yield Case(
            SUITE,
            f"sigmoid_focal_loss gamma=2 vs BCE, {shape}",
            multi,
            ("sigmoid_focal_loss", LF.sigmoid_focal_loss),
            ("torch binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits),
        )
        yield Case(
            SUITE,
            f"sigmoid_focal_loss gamma=2 vs torchvision formula, {shape}",
            multi,
            ("sigmoid_focal_loss", LF.sigmoid_focal_loss),
            ("torchvision.ops.sigmoid_focal_loss formula (eager)", _torchvision_sigmoid_focal),
        )
        yield Case(
            SUITE,
            f"truncated_binary_cross_entropy vs BCE, {shape}",
            multi,
            ("truncated_binary_cross_entropy", LF.truncated_binary_cross_entropy),
            ("torch binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits),
        )
        yield Case(
            SUITE,
            f"softened_binary_cross_entropy vs BCE, {shape}",
            multi,
            ("softened_binary_cross_entropy", LF.softened_binary_cross_entropy),
            ("torch binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits),
        )


@register(SUITE)
def cases():
    yield from _loss_cases()
    yield Case(
        SUITE,
        "can top_k=3 threshold=0.9, (10000, 1000) f64",
        _can_inputs(10000, 1000),
        ("can (closed form, vectorised)", LF.can),
        ("per-row loop of the author's algorithm", _can_loop),
        backward=False,
        notes="forward only; 477 uncertain rows against 9,523 confident ones",
        input_bytes=lambda inputs: inputs["probs"].numel() * inputs["probs"].element_size(),
    )
    yield Case(
        SUITE,
        "can closed form vs per-row closed form, (10000, 1000) f64",
        _can_inputs(10000, 1000),
        ("can (closed form, vectorised)", LF.can),
        ("per-row loop of the closed form", _can_closed_form_loop),
        backward=False,
        notes="forward only; isolates the vectorisation from the algorithmic O(nC) -> O(C) saving",
        input_bytes=lambda inputs: inputs["probs"].numel() * inputs["probs"].element_size(),
    )
