"""logitkit.soft_topk against torch.sort and the soft top-k peers (issue #6).

Every case times one forward + backward of ``(mask * w).sum()`` (``w`` a fixed random weight, so
the gradient is not the trivial zero of a row sum) on the same ``(256, n)`` float32 scores,
``n`` in {1000, 32768}, ``k`` in {1, 16, 256}, at temperature 1 for every method:

* ``torch.sort`` (values, weighted): the reference cost of sorting the same tensor;
* ``entmax.budget_bisect(x, budget=k)``: the Euclidean projection onto the capped simplex (50
  bisection steps);
* ``torchsort.soft_rank(x, regularization_strength=1)`` turned into a mask
  ``clamp(rank - (n - k), 0, 1)`` (its rows do not sum to k);
* ``difftopk.DiffTopkNet("odd_even", n, k, steepness=1)`` (mask = row sums of its (n, k)
  relaxed assignment): its dense relaxed permutations take O(n^2) memory per row, about 16 GB per
  row at n = 1000 (OOM at batch 4 on the 23 GB development machine) and minutes per row, so it
  runs at n = 256, batch 8, against logitkit on the same small tensor.

Accuracy at equal temperature, next to the time in each row's notes: the *distance to the hard
top-k*, mean over rows of ``||mask - hard||_1 / (2k)`` (0: the hard mask; 1: all of the budget
outside the true top k), at temperatures 1, 0.1 and 0.01 (each method applied to ``x / tau``, or
with ``regularization_strength = steepness^-1 = tau``), and the largest row-sum error
``|sum(mask) - k|`` at temperature 1. A second set of cases times the default method against
``budget_bisect`` at temperature 0.1, where the scores spread over ~10 units (the harder case for
the sort-free threshold search).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import torch

import logitkit.functional as LF
from benchmarks.harness import Case, register

SIZES = [1000, 32768]
BATCH = 256
BUDGETS = [1, 16, 256]
TEMPERATURE = 1.0
ACCURACY_TEMPERATURES = (1.0, 0.1, 0.01)
# The peak-memory subprocesses (benchmarks/memory.py) skip the accuracy notes.
_NOTES = os.path.basename(sys.argv[0]) != "memory.py"


def _inputs(batch: int, n: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, n, generator=g).to(device).requires_grad_()
        return {"x": x, "w": torch.randn(batch, n, generator=g).to(device)}

    return setup


def _accuracy(make_mask, x: torch.Tensor, k: int) -> str:
    """Distance to the hard top-k at each accuracy temperature, and the row-sum error at 1."""
    hard = torch.zeros_like(x, dtype=torch.float64).scatter(-1, x.detach().topk(k, -1).indices, 1.0)
    parts = []
    sum_error = 0.0
    for tau in ACCURACY_TEMPERATURES:
        mask = make_mask(x.detach(), tau).double()
        parts.append(f"{((mask - hard).abs().sum(-1) / (2 * k)).mean().item():.3f}")
        if tau == 1.0:
            sum_error = (mask.sum(-1) - k).abs().max().item()
    taus = "/".join(f"{t:g}" for t in ACCURACY_TEMPERATURES)
    return f"distance at tau {taus}: {' / '.join(parts)}, |sum - k| {sum_error:.1e}"


def _ours(k: int, method: str, temperature: float = TEMPERATURE):
    def mask(x, tau=temperature):
        return LF.soft_topk(x, k, temperature=tau, method=method)

    return mask


def _peer_masks(k: int, temperature: float = TEMPERATURE) -> dict[str, object]:
    peers = {}
    if importlib.util.find_spec("entmax"):
        import entmax

        def budget_mask(x, tau=temperature):
            return entmax.budget_bisect(x / tau, budget=k)

        peers["entmax.budget_bisect"] = budget_mask
    if importlib.util.find_spec("torchsort"):
        import torchsort

        def torchsort_mask(x, tau=temperature):
            ranks = torchsort.soft_rank(x, regularization_strength=tau)
            return (ranks - (x.shape[-1] - k)).clamp(0.0, 1.0)

        peers["torchsort.soft_rank mask"] = torchsort_mask
    return peers


def _case(
    name: str, setup, ours_name: str, ours_mask, peer_name: str, peer_fn, k: int, accuracy: bool
) -> Case:
    """A Case whose notes (accuracy of both sides) are filled in the first time it is set up."""

    def ours(x, w):
        return (ours_mask(x) * w).sum()

    case = Case("soft_topk", name, setup, (ours_name, ours), (peer_name, peer_fn))

    def setup_with_notes(device: str):
        inputs = setup(device)
        if accuracy and _NOTES and not case.notes:
            x = inputs["x"]
            with torch.no_grad():
                ours_acc = _accuracy(ours_mask, x, k)
                peer_mask = getattr(peer_fn, "mask", None)
                peer_acc = _accuracy(peer_mask, x, k) if peer_mask else None
            case.notes = f"ours: {ours_acc}" + (f"; peer: {peer_acc}" if peer_acc else "")
        return inputs

    case.setup = setup_with_notes
    return case


def _weighted(mask_fn):
    def peer(x, w):
        return (mask_fn(x) * w).sum()

    peer.mask = mask_fn
    return peer


def _sort(x, w):
    return (torch.sort(x, dim=-1, descending=True).values * w).sum()


@register("soft_topk")
def cases():
    for n in SIZES:
        setup = _inputs(BATCH, n)
        for k in BUDGETS:
            shape = f"({BATCH}, {n}) k={k}"
            for method in ("smooth", "exp", "sigmoid"):
                yield _case(
                    f"{method} vs torch.sort {shape}",
                    setup,
                    f"logitkit.soft_topk[{method}]",
                    _ours(k, method),
                    "torch.sort",
                    _sort,
                    k,
                    accuracy=True,
                )
            if n <= 1000 and k <= 16:  # O(nk) time and memory
                yield _case(
                    f"esp vs torch.sort {shape}",
                    setup,
                    "logitkit.soft_topk[esp]",
                    _ours(k, "esp"),
                    "torch.sort",
                    _sort,
                    k,
                    accuracy=True,
                )
            for peer_name, peer_mask in _peer_masks(k).items():
                yield _case(
                    f"default vs {peer_name} {shape}",
                    setup,
                    "logitkit.soft_topk",
                    _ours(k, "smooth"),
                    peer_name,
                    _weighted(peer_mask),
                    k,
                    accuracy=True,
                )
    if importlib.util.find_spec("entmax"):
        for n in SIZES:
            setup = _inputs(BATCH, n)
            for k in BUDGETS:
                yield _case(
                    f"default vs entmax.budget_bisect tau=0.1 ({BATCH}, {n}) k={k}",
                    setup,
                    "logitkit.soft_topk",
                    _ours(k, "smooth", 0.1),
                    "entmax.budget_bisect",
                    _weighted(_peer_masks(k, 0.1)["entmax.budget_bisect"]),
                    k,
                    accuracy=False,
                )
    if importlib.util.find_spec("difftopk"):
        import difftopk

        n, batch = 256, 8
        for k in (1, 16):
            net = difftopk.DiffTopkNet("odd_even", n, k, steepness=1.0 / TEMPERATURE)

            def difftopk_mask(x, tau=TEMPERATURE, net=net, k=k):
                if tau != TEMPERATURE:
                    net = difftopk.DiffTopkNet("odd_even", n, k, steepness=1.0 / tau)
                return net(x)[1].sum(-1)

            yield _case(
                f"default vs difftopk ({batch}, {n}) k={k}",
                _inputs(batch, n),
                "logitkit.soft_topk",
                _ours(k, "smooth"),
                "difftopk.DiffTopkNet(odd_even)",
                _weighted(difftopk_mask),
                k,
                accuracy=True,
            )
