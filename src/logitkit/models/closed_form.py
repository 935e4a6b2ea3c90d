r"""Closed-form logistic / softmax regression: Gaussian class-conditionals with a shared covariance.

Logistic regression fitted by maximum likelihood has no closed form. Assume instead that each class
is Gaussian with its own mean and one shared covariance, :math:`p(x \mid i) = \mathcal N(\mu_i,
\Sigma)`; Bayes' rule then gives *exactly* a softmax over linear scores (row vectors, post 8578
§2.4):

.. math::

    p(i \mid x) = \mathrm{softmax}_i(x w_i^\top + b_i), \qquad
    w_i = \mu_i \Sigma^{-1}, \qquad b_i = \ln p_i - \tfrac12 \mu_i \Sigma^{-1} \mu_i^\top,

with :math:`p_i` the class frequency and :math:`\mu_i` the class mean. The two-class case is the
difference of the two softmax solutions, :math:`w = (\mu_1 - \mu_0)\Sigma^{-1}`,
:math:`b = \tfrac12(\mu_0\Sigma^{-1}\mu_0^\top - \mu_1\Sigma^{-1}\mu_1^\top) + \ln(p_1/p_0)`.

The covariance is moment-matched to the data: :math:`\Sigma = \tilde\Sigma + \tilde\mu^\top\tilde\mu
- \sum_i p_i \mu_i^\top \mu_i` (overall covariance and mean :math:`\tilde\Sigma, \tilde\mu`), which
is the pooled within-class covariance with ``ddof=0``. The classifier is therefore **linear
discriminant analysis**: its decision function equals that of
``sklearn.discriminant_analysis.LinearDiscriminantAnalysis(solver="lsqr")`` (empirical priors).
The post's binary script uses the covariance of all samples instead (:math:`\Sigma = I` after
whitening); ``covariance="total"`` reproduces it.

Numerics. :math:`\Sigma^{-1}` is never formed from a possibly singular matrix without care:

* **Whitening** (default, as the post recommends): the problem is solved in coordinates where the
  total covariance is the identity; directions whose total variance is below
  :math:`\max(N, d)\,\epsilon` times the largest are dropped (constant features, :math:`d \ge N`).
  Predictions are invariant to it whenever :math:`\Sigma` is non-singular (LDA is affine invariant).
  With fewer samples than features it is computed from the :math:`N \times N` Gram matrix of the
  centred data, :math:`O(N^2 d)` instead of :math:`O(d^3)`.
* A singular covariance (:math:`d \ge N`, a feature constant within every class) falls back to the
  **pseudo-inverse**: eigenvalues below :math:`\max(N, d)\,\epsilon` times the largest are dropped,
  the minimum-norm solution that LDA's least-squares solver also returns. It ignores exactly the
  directions that separate the training classes perfectly, so it generalises poorly.
* When :math:`N` is not much larger than :math:`d` (few-shot) the covariance estimate is noisy and
  a **ridge** generalises much better: :math:`\Sigma + \lambda m I`, with :math:`m =
  \mathrm{tr}\,\Sigma / d` the mean variance (so :math:`\lambda` is unit-free and predictions are
  unchanged when all features are scaled by one factor), or ``ridge="auto"``, Ledoit-Wolf
  shrinkage :math:`(1-\alpha)\Sigma + \alpha m I` with :math:`\alpha` estimated from the
  residuals (O. Ledoit, M. Wolf, "A well-conditioned estimator for large-dimensional covariance
  matrices", J. Multivariate Anal. 2004). Whitening never changes the regularised problem, only
  how it is solved.
* A class with no sample (``num_classes`` larger than the labels present) gets weight 0 and bias
  :math:`-\infty`: it is never predicted.

References: J. Su, "概率视角下的线性模型：逻辑回归有解析解吗？" (kexue.fm/archives/8578, 2021);
J. Su, "你可能不需要BERT-flow：一个线性变换媲美BERT-flow" (kexue.fm/archives/8069, whitening).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from logitkit import _checks

__all__ = ["ClosedFormSolution", "closed_form_softmax_regression"]

_COVARIANCES = ("pooled", "total")
# Rows of the (n, d) residual processed at a time: small enough to stay in cache.
_BLOCK_BYTES = 4 << 20
_LOW_PRECISION = (torch.float16, torch.bfloat16)


class ClosedFormSolution(NamedTuple):
    """Weights ``(C, d)`` and biases ``(C,)`` of the linear scores ``x @ weight.T + bias``."""

    weight: Tensor
    bias: Tensor


def closed_form_softmax_regression(
    input: Tensor,
    target: Tensor,
    *,
    num_classes: int | None = None,
    whiten: bool = True,
    ridge: float | str = 0.0,
    covariance: str = "pooled",
    priors: Tensor | None = None,
) -> ClosedFormSolution:
    r"""Closed-form softmax regression (= LDA): class scores :math:`x w_i^\top + b_i` in one solve.

    .. math::

        w_i = \mu_i \Sigma_\lambda^{-1}, \qquad
        b_i = \ln p_i - \tfrac12\, \mu_i \Sigma_\lambda^{-1} \mu_i^\top, \qquad
        \Sigma_\lambda = \Sigma + \lambda\,\frac{\mathrm{tr}\,\Sigma}{d}\, I, \qquad
        \Sigma = \frac1N \sum_n (x_n - \mu_{y_n})^\top (x_n - \mu_{y_n}),

    solved in whitened coordinates when ``whiten=True``, with the pseudo-inverse for a singular
    matrix (see the module notes). ``softmax`` of the scores is the
    Bayes posterior under Gaussian classes with a shared covariance; for a single binary logit use
    ``weight[1] - weight[0]`` and ``bias[1] - bias[0]``.

    Differentiable in ``input`` (a closed-form head inside a trained network); where the
    covariance is singular the pseudo-inverse is discontinuous, so pass ``ridge > 0`` when
    gradients matter on few-shot data.

    Args:
        input: features, shape ``(N, d)``, floating (float16 / bfloat16 are solved in float32;
            float64 is recommended for badly conditioned features).
        target: class indices in ``[0, num_classes)``, integer tensor of shape ``(N,)``.
        num_classes: :math:`C`; default ``target.max() + 1`` (required under ``torch.compile``).
        whiten: solve in whitened coordinates (numerically safer; the same result whenever
            :math:`\Sigma_\lambda` is non-singular).
        ridge: :math:`\lambda \ge 0`, in units of the mean variance (see above), or ``"auto"``
            for Ledoit-Wolf shrinkage :math:`(1-\alpha)\Sigma + \alpha\,\frac{\mathrm{tr}\,
            \Sigma}{d} I`.
        covariance: ``"pooled"`` (within-class, moment-matched; = LDA) or ``"total"`` (covariance
            of all samples, as the post's binary script).
        priors: class probabilities :math:`p_i` of shape ``(C,)`` (normalised to sum 1); default
            the class frequencies.

    Returns:
        ``ClosedFormSolution(weight, bias)`` of shapes ``(C, d)`` and ``(C,)``, in the input dtype.

    Example:
        >>> x = torch.tensor([[0, 0], [2, 0], [1, 1], [0, 2], [2, 2], [1, 3]], dtype=torch.float64)
        >>> y = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> w, b = closed_form_softmax_regression(x, y)
        >>> w
        tensor([[ 1.5000,  1.5000],
                [ 1.5000, 10.5000]], dtype=torch.float64)
        >>> b  # ln(1/2) - mu_i . w_i / 2
        tensor([ -1.6931, -13.6931], dtype=torch.float64)
        >>> (x @ w.T + b).argmax(1)
        tensor([0, 0, 0, 1, 1, 1])

    Reference: J. Su, kexue.fm/archives/8578 (2021).
    """
    x, target, num_classes, out_dtype = _check_fit_inputs(input, target, num_classes, priors)
    _check_options(whiten, ridge, covariance)
    weight, bias, _, _ = _solve(x, target, num_classes, whiten, ridge, covariance, priors)
    return ClosedFormSolution(weight.to(out_dtype), bias.to(out_dtype))


def _solve(
    x: Tensor,
    target: Tensor,
    num_classes: int,
    whiten: bool,
    ridge: float | str,
    covariance: str,
    priors: Tensor | None,
    fast: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(weight, bias, directions the pseudo-inverse dropped (None if not known), shrinkage or None).

    ``fast`` (eager, no autograd: the estimator) first tries a Cholesky solve of the diagonally
    scaled system and keeps the eigendecomposition path for singular or near-singular systems.
    """
    n, d = x.shape
    onehot = torch.zeros(n, num_classes, dtype=x.dtype, device=x.device)
    onehot.scatter_(1, target.unsqueeze(1), 1.0)
    counts = onehot.sum(0)
    means = (onehot.T @ x) / counts.clamp_min(1.0).unsqueeze(1)
    mean = x.mean(0)
    freq = counts / n
    if priors is None:
        log_prior = torch.log(freq)
    else:
        p = priors.to(x.dtype)
        log_prior = torch.log(p / p.sum())
    # Residuals from the class means (pooled) or the overall mean (total): no cancellation.
    # Fewer samples than features and whitening: every d x d quantity is replaced by an n x n one
    # (the data span at most n - 1 directions), O(n^2 d) instead of O(d^3).
    thin = whiten and n < d
    if thin:
        residual = x - (means[target] if covariance == "pooled" else mean)
        gram = residual @ residual.T / n  # same trace and Frobenius norm as Sigma
        trace, frobenius_sq = torch.diagonal(gram).sum(), (gram * gram).sum()
        spread = ((residual * residual).sum(1) ** 2).sum() / n
    else:
        sigma, spread = _scatter(x, target, means if covariance == "pooled" else None, mean)
        trace, frobenius_sq = torch.diagonal(sigma).sum(), (sigma * sigma).sum()
    average = trace / d  # the mean variance, the unit of the ridge
    shrinkage = None
    if ridge == "auto":
        shrinkage = _ledoit_wolf_shrinkage(n, d, trace, frobenius_sq, spread)
        factor, ridge_value = 1.0 - shrinkage, shrinkage * average
    else:
        factor, ridge_value = 1.0, float(ridge) * average
    rtol = max(n, d) * torch.finfo(x.dtype).eps
    if fast and not thin:
        done = _cholesky_solve(sigma, means, mean, freq, covariance, factor, ridge_value, rtol)
        if done is not None:
            solved, quadratic = done
            bias = torch.where(counts > 0, log_prior - 0.5 * quadratic, float("-inf"))
            return solved, bias, torch.zeros((), dtype=torch.int64), shrinkage
    if whiten:
        centred_x = x - mean
        if thin:
            # Eigenvectors of S = Xc^T Xc / n from those of the Gram matrix Xc Xc^T / n:
            # u_k = Xc^T v_k / sqrt(n s_k), and the whitening column is u_k / sqrt(s_k).
            variance, vectors = torch.linalg.eigh(centred_x @ centred_x.T / n)
            keep = _above(variance, rtol)
            inverse = torch.where(keep, 1.0 / torch.where(keep, variance, 1.0), 0.0)
            transform = centred_x.T @ (vectors * (inverse / math.sqrt(n)))
        else:
            if covariance == "pooled":
                centred = means - mean
                total = sigma + (centred.T * freq) @ centred  # within + between: a sum of PSD terms
            else:
                total = sigma
            variance, basis = torch.linalg.eigh(total)
            keep = _above(variance, rtol)
            inverse = torch.where(keep, 1.0 / torch.where(keep, variance, 1.0), 0.0)
            transform = basis * torch.sqrt(inverse)
        # x @ transform has identity covariance on the kept directions, and
        # T^T (a Sigma + c I) T = a T^T Sigma T + c diag(1 / s). Dropped directions are zero rows
        # and columns of the system; the means are zero there too.
        if thin:
            projected = residual @ transform
            whitened_sigma = projected.T @ projected / n
        else:
            whitened_sigma = transform.T @ sigma @ transform
        system = factor * whitened_sigma + torch.diag_embed(ridge_value * inverse)
        mu = means @ transform
        directions = keep.sum()
    else:
        system = factor * sigma + ridge_value * torch.eye(d, dtype=x.dtype, device=x.device)
        mu = means
        directions = torch.tensor(d, device=x.device)
    solved, rank = _pinv_apply(mu, system, rtol)
    dropped = None if rank is None else directions - rank
    bias = log_prior - 0.5 * (solved * mu).sum(1)
    weight = solved @ transform.T if whiten else solved
    bias = torch.where(counts > 0, bias, float("-inf"))
    return weight, bias, dropped, shrinkage


def _cholesky_solve(
    sigma: Tensor,
    means: Tensor,
    mean: Tensor,
    freq: Tensor,
    covariance: str,
    factor: float | Tensor,
    ridge_value: float | Tensor,
    rtol: float,
) -> tuple[Tensor, Tensor] | None:
    """``(means @ A^-1, diag(means A^-1 means^T))`` for ``A = factor Sigma + ridge_value I`` by a
    Cholesky factorisation after scaling every feature to unit total variance (features without
    variance are dropped); ``None`` when a pivot falls below ``1000 rtol`` times the largest
    diagonal entry (then the caller pseudo-inverts). The same probabilities as the whitened path,
    several times cheaper."""
    total_var = torch.diagonal(sigma)
    if covariance == "pooled":
        total_var = total_var + (freq.unsqueeze(1) * (means - mean) ** 2).sum(0)
    floor = torch.finfo(sigma.dtype).tiny + rtol * total_var.max()
    live = total_var > floor  # constant features are dropped, as in the whitened path
    scale = torch.where(live, torch.rsqrt(torch.where(live, total_var, 1.0)), 0.0)
    system = factor * sigma * scale.unsqueeze(0) * scale.unsqueeze(1)
    system = system + torch.diag_embed(ridge_value * scale * scale + (~live).to(sigma.dtype))
    chol, info = torch.linalg.cholesky_ex(system)
    pivots = torch.diagonal(chol) ** 2
    if int(info) != 0 or not bool(pivots.min() > 1000 * rtol * torch.diagonal(system).max()):
        return None
    scaled_means = means * scale
    solved = torch.cholesky_solve(scaled_means.T, chol).T  # (C, d) = scaled_means @ system^-1
    quadratic = (solved * scaled_means).sum(1)
    return solved * scale, quadratic


def _scatter(x: Tensor, target: Tensor, means: Tensor | None, mean: Tensor) -> tuple[Tensor, Tensor]:
    """``(Sigma, sum_k |r_k|^4 / n)`` for the residuals ``r = x - means[target]`` (or ``x - mean``),
    accumulated over row blocks so that no ``(n, d)`` temporary is allocated."""
    n, d = x.shape
    sigma = x.new_zeros(d, d)
    spread = x.new_zeros(())
    rows = max(1, _BLOCK_BYTES // (x.element_size() * d))
    for start in range(0, n, rows):
        block = x[start : start + rows]
        residual = block - (mean if means is None else means[target[start : start + rows]])
        sigma = (
            sigma.addmm(residual.T, residual) if sigma.requires_grad else sigma.addmm_(residual.T, residual)
        )
        spread = spread + ((residual * residual).sum(1) ** 2).sum()
    return sigma / n, spread / n


def _ledoit_wolf_shrinkage(n: int, d: int, trace: Tensor, frobenius_sq: Tensor, spread: Tensor) -> Tensor:
    r"""Ledoit-Wolf (2004) shrinkage intensity of :math:`\Sigma = R^\top R / n` towards
    :math:`m I`, :math:`m = \mathrm{tr}\,\Sigma / d`: :math:`\min(\bar b^2, d^2) / d^2` with
    :math:`d^2 = \lVert \Sigma - mI \rVert^2` and
    :math:`\bar b^2 = \frac1{n^2} \sum_k \lVert r_k r_k^\top - \Sigma \rVert^2
    = \frac1{nd}\big(\frac1n \sum_k |r_k|^4 - \lVert \Sigma \rVert_F^2\big)` (norms
    :math:`\lVert A \rVert^2 = \mathrm{tr}(AA^\top)/d`); ``spread`` is
    :math:`\frac1n \sum_k |r_k|^4`."""
    m = trace / d
    distance = (frobenius_sq - 2 * m * trace + d * m * m) / d
    b_bar = (spread - frobenius_sq) / (n * d)
    b = torch.minimum(b_bar, distance)
    safe = torch.where(distance > 0, distance, 1.0)
    return torch.where(distance > 0, b / safe, 0.0).clamp(0.0, 1.0)


def _above(values: Tensor, rtol: float) -> Tensor:
    """Eigenvalues (ascending) above ``rtol`` times the largest: the numerical rank's support."""
    return values > rtol * values[-1:].clamp_min(torch.finfo(values.dtype).tiny)


def _pinv_apply(rhs: Tensor, system: Tensor, rtol: float) -> tuple[Tensor, Tensor | None]:
    """``rhs @ pinv(system)`` for a symmetric PSD ``system``, and its rank when known.

    With autograd recording, ``torch.linalg.pinv`` (whose backward uses the pseudo-inverse itself,
    well defined at repeated eigenvalues); otherwise one eigendecomposition, which also gives the
    rank.
    """
    if torch.is_grad_enabled() and (rhs.requires_grad or system.requires_grad):
        return rhs @ torch.linalg.pinv(system, hermitian=True, rtol=rtol), None
    values, vectors = torch.linalg.eigh(system)
    keep = _above(values, rtol)
    inverse = torch.where(keep, 1.0 / torch.where(keep, values, 1.0), 0.0)
    return ((rhs @ vectors) * inverse) @ vectors.T, keep.sum()


def _check_options(whiten: bool, ridge: float | str, covariance: str) -> None:
    if not isinstance(whiten, bool):
        raise TypeError(f"whiten: expected a bool, got {whiten!r}")
    if ridge != "auto":
        if isinstance(ridge, str):
            raise ValueError(f"ridge: expected a non-negative number or 'auto', got {ridge!r}")
        _checks.check_positive(ridge, "ridge", allow_zero=True)
    _checks.check_one_of(covariance, "covariance", _COVARIANCES)


def _check_fit_inputs(
    input: Tensor, target: Tensor, num_classes: int | None, priors: Tensor | None
) -> tuple[Tensor, Tensor, int, torch.dtype]:
    _checks.check_floating(input, "input")
    if input.dim() != 2:
        raise ValueError(f"input: expected a 2-D tensor of features (N, d), got shape {tuple(input.shape)}")
    _checks.check_tensor(target, "target")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target: expected an integer tensor of class indices, got dtype {target.dtype}")
    if target.shape != input.shape[:1]:
        raise ValueError(
            f"target: expected shape ({input.shape[0]},), one class index per row of input, "
            f"got {tuple(target.shape)}"
        )
    if input.shape[0] == 0 or input.shape[1] == 0:
        raise ValueError(
            f"input: expected at least one sample and one feature, got shape {tuple(input.shape)}"
        )
    if num_classes is None:
        if torch.compiler.is_compiling():
            raise ValueError("num_classes: required under torch.compile (it fixes the output shape)")
        num_classes = int(target.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    _checks.check_index_target(target, num_classes, None)
    _checks.check_finite(input, "input")
    if priors is not None:
        _checks.check_class_weight(priors, num_classes, "priors")
    work = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
    return input.to(work), target.to(torch.int64), num_classes, input.dtype
