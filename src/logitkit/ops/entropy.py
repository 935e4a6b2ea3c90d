r"""Entropy of a distribution and entropy normalization (a power transform to a target entropy).

:math:`\mathcal H(p) = -\sum_i p_i \log p_i \in [0, \log n]` (:math:`0 \log 0 = 0`). The power
transform :math:`\tilde p_i = p_i^\gamma / \sum_j p_j^\gamma`, i.e.
:math:`\tilde p = \mathrm{softmax}(\gamma \log p) = \mathrm{softmax}(\gamma z)` for logits
:math:`z`, keeps the order of the entries; :math:`\gamma = 0` is uniform on the support,
:math:`\gamma \to \infty` one-hot (uniform over tied maxima), and the entropy is strictly decreasing
in :math:`\gamma` unless :math:`p` is uniform on its support:

.. math::

    \frac{d\mathcal H(\tilde p)}{d\gamma} = -\gamma\, \mathrm{Var}_{\tilde p}[\log p].

:func:`entropy_normalize` solves :math:`\mathcal H(\tilde p) = \mathcal H^*` for :math:`\gamma`.
The post's Newton step (expectations under the current :math:`p`) is
:math:`\gamma \leftarrow 1 + (\mathcal H^* - \mathcal H)/(\mathcal H^2 - \mathbb E_p[(\log p)^2])`;
here Newton runs on :math:`\theta = \log\gamma` (the same derivative,
:math:`d\mathcal H/d\theta = -\gamma^2 \mathrm{Var}`) with the step limited to a factor
:math:`e^{\pm 2}` and a bisection bracket, a fixed number of steps, all in log space. The
reachable targets are :math:`(\log \#\{\text{maxima}\},\ \log |\text{support}|]`.

Reference: J. Su, "概率分布的熵归一化（Entropy Normalization）" (kexue.fm/archives/8829, 2021).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from logitkit import _checks
from logitkit.ops.softmax import apply_temperature

__all__ = ["EntropyNormalize", "entropy", "entropy_normalize"]

_INPUT_TYPES = ("logits", "probs")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
INF = float("inf")
_MAX_STEP = 2.0  # largest change of log(gamma) per Newton step


def _log_probs(input: Tensor, dim: int, input_type: str, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(log p with -inf outside the support, support mask), ``dim`` moved last."""
    _checks.check_one_of(input_type, "input_type", _INPUT_TYPES)
    work = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
    x = input.to(work)
    if mask is not None:
        _checks.check_mask(mask, input)
    if input_type == "probs":
        _checks.check_in_unit_interval(x, "input")
        x = torch.log(x)
    x = apply_temperature(x, 1.0, mask).movedim(dim, -1)
    keep = x > -INF
    alive = keep.any(-1, keepdim=True)
    logp = torch.log_softmax(torch.where(alive, x, 0.0), -1)
    return torch.where(keep, logp, -INF), keep


def _entropy_terms(logp: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(p, H, E[(log p)^2]) with 0 log 0 = 0 and no NaN gradient at -inf."""
    safe = torch.where(keep, logp, 0.0)
    p = torch.where(keep, torch.exp(safe), 0.0)
    h = -(p * safe).sum(-1, keepdim=True)
    second = (p * safe * safe).sum(-1, keepdim=True)
    return p, h, second


def entropy(
    input: Tensor,
    dim: int = -1,
    keepdim: bool = False,
    *,
    input_type: str = "logits",
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Shannon entropy (nats) of the distribution along ``dim``.

    .. math::

        \mathcal H(p) = -\sum_i p_i \log p_i, \qquad p = \mathrm{softmax}(x/\tau)
        \ \ (\texttt{input\_type="logits"}) \ \text{ or } \ p = x \ \ (\texttt{"probs"}),

    computed from log-probabilities, with :math:`0\log 0 = 0` (zero probabilities, ``-inf``
    logits and masked entries contribute 0 and receive zero gradient). Probabilities are
    normalised along ``dim`` first; a row with no mass has entropy 0.

    Args:
        input: logits or probabilities, any shape.
        dim: the distribution's dimension (default ``-1``).
        keepdim: keep the reduced dimension.
        input_type: ``"logits"`` (default) or ``"probs"``.
        temperature: :math:`\tau > 0` applied to logits (ignored for probabilities).
        mask: bool tensor broadcastable to ``input``; ``True`` keeps an entry.

    Example:
        >>> entropy(torch.zeros(4))  # log 4
        tensor(1.3863)
        >>> entropy(torch.tensor([0.5, 0.5, 0.0]), input_type="probs")
        tensor(0.6931)

    Reference: J. Su, kexue.fm/archives/8829.
    """
    _checks.check_floating(input, "input")
    dim = _checks.check_dim(input, dim)
    _checks.check_positive(temperature, "temperature")
    x = input.reshape(1) if input.dim() == 0 else input
    if input_type == "logits" and (isinstance(temperature, Tensor) or temperature != 1.0):
        x = x / (temperature.to(x.dtype) if isinstance(temperature, Tensor) else temperature)
    if mask is not None and input.dim() == 0:
        mask = mask.reshape(1)
    logp, keep = _log_probs(x, dim, input_type, mask)
    _, h, _ = _entropy_terms(logp, keep)
    if input.dim() == 0:
        return h.reshape(()).to(input.dtype)
    h = h.movedim(-1, dim)
    return (h if keepdim else h.squeeze(dim)).to(input.dtype)


def _target(target_entropy: float | Tensor, logp: Tensor, dim: int) -> Tensor:
    batch = logp.shape[:-1]
    if isinstance(target_entropy, Tensor):
        _checks.check_floating(target_entropy, "target_entropy")
        t = target_entropy
        if t.dim() == logp.dim() and t.dim() > 0 and t.shape[dim] == 1:
            t = t.squeeze(dim)
        try:
            shape = torch.broadcast_shapes(t.shape, batch)
        except RuntimeError:
            shape = None
        if shape != batch:
            raise ValueError(
                "target_entropy: expected a number or a tensor broadcastable to the input's shape "
                f"without dim {tuple(batch)}, got shape {tuple(target_entropy.shape)}"
            )
        return t.to(logp.dtype).expand(batch).unsqueeze(-1)
    if isinstance(target_entropy, bool) or not isinstance(target_entropy, (int, float)):
        raise TypeError(f"target_entropy: expected a number or a tensor, got {type(target_entropy).__name__}")
    if not math.isfinite(target_entropy) or target_entropy < 0:
        raise ValueError(f"target_entropy: expected a finite non-negative number, got {target_entropy!r}")
    return torch.full_like(logp[..., :1], float(target_entropy))


def _reachable(logp: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """(log #maxima, log #support): the open-closed range of reachable entropies."""
    top = logp.amax(-1, keepdim=True)
    ties = (keep & (logp == top)).sum(-1, keepdim=True).clamp_min(1)
    support = keep.sum(-1, keepdim=True).clamp_min(1)
    return torch.log(ties.to(logp.dtype)), torch.log(support.to(logp.dtype))


def _check_reachable(target: Tensor, low: Tensor, high: Tensor, alive: Tensor, dim: int) -> None:
    if not _checks.validate_args_enabled() or target.numel() == 0:
        return
    t = target.detach()
    slack = 1e-6 * torch.clamp_min(high, 1.0)
    bad = torch.isnan(t) | (t <= low) | (t > high + slack)
    # A row whose entropy cannot move (uniform on its support) accepts only its own entropy.
    stuck = low >= high
    bad = torch.where(stuck, (t - high).abs() > slack, bad) & alive
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0])
        lo, hi, got = low.flatten()[i].item(), high.flatten()[i].item(), t.flatten()[i].item()
        what = (
            f"exactly {hi:.6g} (this row is uniform on its support)"
            if lo >= hi
            else f"in ({lo:.6g}, {hi:.6g}]"
        )
        raise ValueError(
            f"target_entropy: expected a value {what} (log #maxima, log #support along dim {dim}), "
            f"got {got:.6g}"
        )


def _solve_gamma(logp: Tensor, keep: Tensor, target: Tensor, low: Tensor, high: Tensor, steps: int) -> Tensor:
    """log(gamma) by safeguarded Newton with a bisection bracket (fixed number of steps)."""
    theta = torch.zeros_like(target)
    lo = torch.full_like(target, -INF)
    hi = torch.full_like(target, INF)
    for _ in range(steps):
        gamma = torch.exp(theta)
        q = torch.log_softmax(torch.where(keep, gamma * logp, -INF), -1)
        q = torch.where(keep, q, -INF)
        p, _, _ = _entropy_terms(q, keep)
        safe = torch.where(keep, logp, 0.0)
        mean = (p * safe).sum(-1, keepdim=True)
        var = (p * (safe - mean) ** 2).sum(-1, keepdim=True)
        h = -(p * torch.where(keep, q, 0.0)).sum(-1, keepdim=True)
        # Entropy decreases in theta: too high means theta is too small.
        lo = torch.where(h > target, theta, lo)
        hi = torch.where(h > target, hi, theta)
        slope = gamma * gamma * var  # -dH/dtheta
        step = ((h - target) / torch.where(slope > 0, slope, 1.0)).clamp(-_MAX_STEP, _MAX_STEP)
        step = torch.where(slope > 0, step, 0.0)
        proposal = theta + step
        # Strictly inside the bracket, or a converged (rounding-sized) step that may touch it.
        tiny = step.abs() <= 8 * torch.finfo(theta.dtype).eps * (1.0 + theta.abs())
        inside = ((proposal > lo) & (proposal < hi)) | tiny
        both = torch.isfinite(lo) & torch.isfinite(hi)
        theta = torch.where(inside | ~both, proposal, 0.5 * (lo + hi))
    return theta


def entropy_normalize(
    input: Tensor,
    target_entropy: float | Tensor,
    dim: int = -1,
    *,
    input_type: str = "logits",
    steps: int = 16,
    mask: Tensor | None = None,
    return_gamma: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Rescale a distribution to a prescribed entropy: :math:`\tilde p = \mathrm{softmax}(\gamma \log p)`
    with :math:`\gamma > 0` solving :math:`\mathcal H(\tilde p) = \mathcal H^*`.

    .. math::

        \tilde p_i = \frac{p_i^\gamma}{\sum_j p_j^\gamma}, \qquad
        \mathcal H_\gamma = \log\sum_i p_i^\gamma - \frac{\gamma\sum_i p_i^\gamma \log p_i}{\sum_i p_i^\gamma}
        = \mathcal H^*.

    Order is preserved and zeros stay zero, so the target must lie in
    :math:`(\log \#\text{maxima}, \log|\text{support}|]`; the top end gives the uniform distribution
    on the support (:math:`\gamma = 0`). Solved by safeguarded Newton on :math:`\log\gamma` with a
    bisection bracket, ``steps`` fixed steps (``torch.compile``-friendly). Differentiable in
    ``input`` and ``target_entropy`` by the implicit-function theorem:
    :math:`\partial\gamma/\partial\cdot = -(\partial \mathcal H/\partial\cdot)/(\partial
    \mathcal H/\partial\gamma)`.

    Args:
        input: logits (``input_type="logits"``, default) or probabilities (``"probs"``).
        target_entropy: :math:`\mathcal H^*` in nats: a number or a tensor broadcastable to the
            input's shape without ``dim``; may require grad.
        dim: the distribution's dimension (default ``-1``).
        steps: Newton / bisection steps (default 16; 12 reach float64 accuracy on typical inputs).
        mask: bool tensor broadcastable to ``input``; ``True`` keeps an entry.
        return_gamma: also return :math:`\gamma` (shape of the input without ``dim``).

    Returns:
        :math:`\tilde p`, shaped like ``input`` (and :math:`\gamma` if asked).

    Raises:
        ValueError: when a target is outside the reachable range (value check; under
            ``torch.compile`` the result saturates at the nearest reachable entropy instead).

    Example:
        >>> x = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
        >>> p, gamma = entropy_normalize(x, 0.5, return_gamma=True)
        >>> p
        tensor([0.8477, 0.1295, 0.0198, 0.0030], dtype=torch.float64)
        >>> round(entropy(p, input_type="probs").item(), 12), round(gamma.item(), 4)
        (0.5, 1.8786)

    Reference: J. Su, kexue.fm/archives/8829.
    """
    _checks.check_floating(input, "input")
    dim = _checks.check_dim(input, dim)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    x = input.reshape(1) if input.dim() == 0 else input
    logp, keep = _log_probs(x, dim, input_type, mask)
    target = _target(target_entropy, logp, dim)
    low, high = _reachable(logp.detach(), keep)
    _check_reachable(target, low, high, keep.any(-1, keepdim=True), dim)
    with torch.no_grad():
        theta = _solve_gamma(logp.detach(), keep, target.detach(), low, high, steps)
    gamma = _implicit_gamma(logp, keep, target, torch.exp(theta))
    # Top of the range (or a row that cannot move): uniform on the support, gamma = 0.
    flat = (target >= high) | (low >= high)
    gamma = torch.where(flat, 0.0, gamma)
    q = torch.log_softmax(torch.where(keep, gamma * torch.where(keep, logp, 0.0), -INF), -1)
    alive = keep.any(-1, keepdim=True)
    out = torch.where(keep & alive, torch.exp(torch.where(keep, q, 0.0)), 0.0)
    out = _restore(out, dim, input)
    if not return_gamma:
        return out
    g = gamma.squeeze(-1) if input.dim() else gamma.reshape(())
    return out, g.to(input.dtype)


def _implicit_gamma(logp: Tensor, keep: Tensor, target: Tensor, gamma0: Tensor) -> Tensor:
    r"""The root ``gamma0`` as a value, with the implicit-function derivatives.

    With the Newton map :math:`N(\gamma) = \gamma - R(\gamma)/R'(\gamma)`,
    :math:`R = \mathcal H(\tilde p_\gamma) - \mathcal H^*`: :math:`N'(\gamma^*) = 0` at the root,
    so one step from the detached root carries the exact first derivatives, and a second step
    taken from that one the exact second derivatives (double backward, Hessian-vector
    products). The steps' values are removed, so an imperfectly converged root is never moved."""
    safe = torch.where(keep, logp, 0.0)
    first = _newton(safe, keep, target, gamma0)
    gamma1 = gamma0 + (first - first.detach())
    second = _newton(safe, keep, target, gamma1)
    return gamma0 + (second - second.detach())


def _newton(safe: Tensor, keep: Tensor, target: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`\gamma + (\mathcal H_\gamma - \mathcal H^*)/(\gamma\,\mathrm{Var}_{\tilde p}[\log p])`
    (the step is 0 where the entropy cannot move)."""
    q = torch.log_softmax(torch.where(keep, gamma * safe, -INF), -1)
    q = torch.where(keep, q, 0.0)
    p = torch.where(keep, torch.exp(q), 0.0)
    h = -(p * q).sum(-1, keepdim=True)
    mean = (p * safe).sum(-1, keepdim=True)
    var = (p * (safe - mean) ** 2).sum(-1, keepdim=True)
    slope = gamma * var  # -dH/dgamma
    ok = slope > 0
    inv = torch.where(ok, 1.0 / torch.where(ok, slope, 1.0), 0.0)
    return gamma + (h - target) * inv


def _restore(out: Tensor, dim: int, input: Tensor) -> Tensor:
    out = out.movedim(-1, dim)
    return (out.reshape(()) if input.dim() == 0 else out).to(input.dtype)


class EntropyNormalize(nn.Module):
    """Module form of :func:`entropy_normalize` with a fixed ``target_entropy``;
    ``forward(input, mask=None)``."""

    def __init__(
        self, target_entropy: float, dim: int = -1, *, input_type: str = "logits", steps: int = 16
    ) -> None:
        super().__init__()
        _checks.check_one_of(input_type, "input_type", _INPUT_TYPES)
        if (
            isinstance(target_entropy, bool)
            or not isinstance(target_entropy, (int, float))
            or target_entropy < 0
        ):
            raise ValueError(f"target_entropy: expected a non-negative number, got {target_entropy!r}")
        self.target_entropy = float(target_entropy)
        self.dim = dim
        self.input_type = input_type
        self.steps = steps

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return entropy_normalize(
            input, self.target_entropy, self.dim, input_type=self.input_type, steps=self.steps, mask=mask
        )

    def extra_repr(self) -> str:
        return f"target_entropy={self.target_entropy}, dim={self.dim}, input_type={self.input_type!r}"
