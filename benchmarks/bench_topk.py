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
outside the true top k), and the largest row-sum error ``|sum(mask) - k|``.
"""

from __future__ import annotations

import importlib.util

import torch

import logitkit.functional as LF
from benchmarks.harness import Case, register

SIZES = [1000, 32768]
BATCH = 256
BUDGETS = [1, 16, 256]
TEMPERATURE = 1.0


def _inputs(batch: int, n: int):
    def setup(device: str):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, n, generator=g).to(device).requires_grad_()
        return {"x": x, "w": torch.randn(batch, n, generator=g).to(device)}

    return setup


def _accuracy(mask: torch.Tensor, x: torch.Tensor, k: int) -> str:
    mask = mask.detach().double()
    hard = torch.zeros_like(mask).scatter(-1, x.detach().topk(k, -1).indices, 1.0)
    distance = ((mask - hard).abs().sum(-1) / (2 * k)).mean().item()
    sum_error = (mask.sum(-1) - k).abs().max().item()
    return f"distance {distance:.3f}, |sum - k| {sum_error:.1e}"


def _ours(k: int, method: str):
    def mask(x):
        return LF.soft_topk(x, k, temperature=TEMPERATURE, method=method)

    return mask


def _peer_masks(k: int) -> dict[str, object]:
    peers = {}
    if importlib.util.find_spec("entmax"):
        import entmax

        peers["entmax.budget_bisect"] = lambda x: entmax.budget_bisect(x / TEMPERATURE, budget=k)
    if importlib.util.find_spec("torchsort"):
        import torchsort

        def torchsort_mask(x):
            ranks = torchsort.soft_rank(x, regularization_strength=TEMPERATURE)
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
        if accuracy and not case.notes:
            x = inputs["x"]
            with torch.no_grad():
                ours_acc = _accuracy(ours_mask(x), x, k)
                peer_mask = getattr(peer_fn, "mask", None)
                peer_acc = _accuracy(peer_mask(x), x, k) if peer_mask else None
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
    if importlib.util.find_spec("difftopk"):
        import difftopk

        n, batch = 256, 8
        for k in (1, 16):
            net = difftopk.DiffTopkNet("odd_even", n, k, steepness=1.0 / TEMPERATURE)

            def difftopk_mask(x, net=net):
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
