r"""VAE density estimation by importance sampling, and the importance-weighted (IWAE) objective.

A VAE models data as a continuous mixture :math:`q_\theta(x) = \int q_\theta(x \mid z)\, q(z)\, dz`
with a parameter-free prior :math:`q(z) = \mathcal N(0, I)` and a simple decoder
:math:`q_\theta(x \mid z)`. Sampling :math:`z` from the prior wastes almost every sample in high
dimension, so the encoder supplies an *importance distribution* :math:`p_\theta(z \mid x)` (post
8791: "just an importance-weighting function", not necessarily a posterior):

.. math::

    q_\theta(x) = \mathbb E_{z \sim p_\theta(z \mid x)}\Big[\frac{q_\theta(x \mid z)\, q(z)}
    {p_\theta(z \mid x)}\Big]
    \;\approx\; \frac1M \sum_{i=1}^M w_i, \qquad
    \log w_i = \log q_\theta(x \mid z_i) + \log q(z_i) - \log p_\theta(z_i \mid x).

:func:`importance_log_likelihood` returns :math:`\mathrm{LSE}_i \log w_i - \log M`, in log space and
chunked over the :math:`M` samples. It is unbiased for :math:`q_\theta(x)` before the log and
biased low after it (Jensen): :math:`\mathbb E[\cdot] \le \log q_\theta(x)`, non-decreasing in
:math:`M` and converging to :math:`\log q_\theta(x)` (Burda et al.). With the exact posterior as
proposal every weight equals :math:`q_\theta(x)`, so the estimate is exact for any :math:`M`.
Its negative mean is the training objective: :math:`M = 1` is the usual (single-sample) VAE loss,
:math:`M > 1` the IWAE loss (:func:`iwae_loss`).

**Model protocol.** ``model`` is any object with ``encode(x)`` returning a
``torch.distributions.Distribution`` over :math:`z` with batch shape ``(N,)`` (reparameterised
``rsample`` for training), ``decode(z)`` returning a distribution over :math:`x` whose
``log_prob(x)`` has the batch shape of ``z`` minus its event dimension, and ``prior()`` returning
the prior over :math:`z`. :class:`VAE` is a small MLP implementation.

Discrete data need a discrete likelihood (Bernoulli here, on binarised inputs); report nats (or
divide by :math:`D \log 2` for bits per dimension).

Reference: J. Su, "变分自编码器（八）：估计样本概率密度" (kexue.fm/archives/8791, 2021); Y. Burda,
R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders" (arXiv 1509.00519).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from logitkit import _checks
from logitkit._reduce import reduce_loss

__all__ = ["VAE", "importance_log_likelihood", "iwae_loss"]

_LIKELIHOODS = ("bernoulli", "gaussian")
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _check_model(model: Any) -> None:
    missing = [m for m in ("encode", "decode", "prior") if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(
            "model: expected an object with encode(x), decode(z) and prior() returning "
            f"torch.distributions, got {type(model).__name__} without {', '.join(missing)}"
        )


def importance_log_likelihood(
    x: Tensor, model: Any, num_samples: int, *, chunk_size: int | None = None
) -> Tensor:
    r"""Importance-sampling estimate of :math:`\log q_\theta(x)` per sample.

    .. math::

        \widehat{\log q_\theta(x)} = \mathrm{LSE}_{i=1}^{M}\big(\log q_\theta(x \mid z_i)
        + \log q(z_i) - \log p_\theta(z_i \mid x)\big) - \log M,
        \qquad z_i \sim p_\theta(z \mid x).

    The :math:`M` samples are drawn ``chunk_size`` at a time and folded into a running
    log-sum-exp, so memory is that of ``chunk_size`` decoder passes (under ``torch.no_grad``; with
    autograd recording every chunk's graph is kept for the backward pass). Samples come from the
    global RNG (``torch.manual_seed``); differentiable through reparameterised samples.

    Args:
        x: data, shape ``(N, ...)`` as ``model.decode(z).log_prob`` expects.
        model: see the module notes (``encode``, ``decode``, ``prior``), e.g. :class:`VAE`.
        num_samples: :math:`M \ge 1`.
        chunk_size: samples per chunk (default: all :math:`M` at once).

    Returns:
        ``(N,)`` estimates in nats, in ``x``'s dtype (log-sum-exp accumulated in float32 or
        better).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = VAE(4, 2, hidden_features=(8,))
        >>> x = torch.bernoulli(torch.full((3, 4), 0.5))
        >>> with torch.no_grad():
        ...     ll = importance_log_likelihood(x, model, 1000, chunk_size=100)
        >>> ll.shape, bool((ll < 0).all())
        (torch.Size([3]), True)

    Reference: J. Su, kexue.fm/archives/8791 (2021); Burda et al. (arXiv 1509.00519).
    """
    _checks.check_floating(x, "x")
    if x.dim() < 1:
        raise ValueError(f"x: expected a batch of shape (N, ...), got shape {tuple(x.shape)}")
    _check_model(model)
    num_samples = _check_positive_int(num_samples, "num_samples")
    chunk = num_samples if chunk_size is None else _check_positive_int(chunk_size, "chunk_size")
    proposal = model.encode(x)
    prior = model.prior()
    total: Tensor | None = None
    for start in range(0, num_samples, chunk):
        m = min(chunk, num_samples - start)
        z = proposal.rsample((m,)) if proposal.has_rsample else proposal.sample((m,))
        terms = (
            ("model.decode(z).log_prob(x)", model.decode(z).log_prob(x)),
            ("model.prior().log_prob(z)", prior.log_prob(z)),
            ("model.encode(x).log_prob(z)", proposal.log_prob(z)),
        )
        for name, term in terms:
            if term.shape != (m, x.shape[0]):
                raise ValueError(
                    f"model: expected {name} of shape (samples, N) = ({m}, {x.shape[0]}), got "
                    f"{tuple(term.shape)} (encode(x) needs batch shape (N,), and the distributions "
                    "their event dimensions declared, e.g. with torch.distributions.Independent)"
                )
        log_w = terms[0][1] + terms[1][1] - terms[2][1]
        if log_w.dtype in _LOW_PRECISION:
            log_w = log_w.float()
        part = torch.logsumexp(log_w, 0)
        total = part if total is None else torch.logaddexp(total, part)
    assert total is not None
    return (total - math.log(num_samples)).to(x.dtype)


def iwae_loss(
    x: Tensor,
    model: Any,
    num_samples: int = 1,
    *,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    r"""Importance-weighted autoencoder loss; :math:`M = 1` is the usual single-sample VAE loss.

    .. math::

        \ell(x) = -\log \frac1M \sum_{i=1}^M \frac{q_\theta(x \mid z_i)\, q(z_i)}{p_\theta(z_i \mid x)},
        \qquad z_i \sim p_\theta(z \mid x) \text{ (reparameterised)},

    the negative of :func:`importance_log_likelihood`. For :math:`M = 1` it is
    :math:`-\log q_\theta(x \mid z) - \log q(z) + \log p_\theta(z \mid x)`, whose expectation is the
    negative ELBO (reconstruction plus KL, the KL estimated by the same sample). Larger :math:`M`
    gives a tighter bound and relies less on the encoder (better generation, weaker encoding,
    post 8791's comments).

    Args:
        x, model, chunk_size: as :func:`importance_log_likelihood`.
        num_samples: :math:`M \ge 1`.
        reduction: ``'mean'`` | ``'sum'`` | ``'none'`` over the batch.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = VAE(4, 2, hidden_features=(8,))
        >>> x = torch.bernoulli(torch.full((16, 4), 0.5))
        >>> loss = iwae_loss(x, model, num_samples=5)
        >>> loss.backward()
        >>> bool(loss > 0)
        True

    Reference: Burda et al. (arXiv 1509.00519); J. Su, kexue.fm/archives/8791 (2021).
    """
    _checks.check_reduction(reduction)
    loss = -importance_log_likelihood(x, model, num_samples, chunk_size=chunk_size)
    return reduce_loss(loss, reduction)


class VAE(nn.Module):
    r"""A small VAE: MLP encoder (diagonal Gaussian importance distribution), MLP decoder,
    standard-normal prior.

    * ``encode(x)``: :math:`p_\theta(z \mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))`.
    * ``decode(z)``: :math:`q_\theta(x \mid z)`, independent Bernoulli with logits from the MLP
      (``likelihood="bernoulli"``, for data in {0, 1}) or a Gaussian with the MLP's mean and a
      learned per-dimension scale (``"gaussian"``).
    * ``prior()``: :math:`q(z) = \mathcal N(0, I)`.
    * ``forward(x, num_samples=1)``: :func:`iwae_loss` (mean over the batch).

    Args:
        in_features: :math:`D`, the flattened data dimension (inputs of shape ``(N, D)``).
        latent_dim: dimension of :math:`z`.
        hidden_features: widths of the hidden layers of both MLPs (mirrored in the decoder).
        likelihood: ``"bernoulli"`` or ``"gaussian"``.

    Example:
        >>> vae = VAE(64, 8, hidden_features=(128,))
        >>> vae.encode(torch.rand(5, 64)).rsample().shape
        torch.Size([5, 8])
    """

    def __init__(
        self,
        in_features: int,
        latent_dim: int,
        hidden_features: Sequence[int] = (256,),
        *,
        likelihood: str = "bernoulli",
    ) -> None:
        super().__init__()
        _check_positive_int(in_features, "in_features")
        _check_positive_int(latent_dim, "latent_dim")
        for width in hidden_features:
            _check_positive_int(width, "hidden_features")
        _checks.check_one_of(likelihood, "likelihood", _LIKELIHOODS)
        self.in_features, self.latent_dim, self.likelihood = in_features, latent_dim, likelihood
        self.encoder = _mlp([in_features, *hidden_features, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden_features), in_features])
        if likelihood == "gaussian":
            self.log_scale = nn.Parameter(torch.zeros(in_features))

    def encode(self, x: Tensor) -> Distribution:
        """The importance distribution :math:`p_\\theta(z \\mid x)`, batch shape ``(N,)``."""
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def decode(self, z: Tensor) -> Distribution:
        """The likelihood :math:`q_\\theta(x \\mid z)`, batch shape ``z.shape[:-1]``."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return Independent(Bernoulli(logits=out, validate_args=False), 1)
        return Independent(Normal(out, self.log_scale.exp().expand_as(out)), 1)

    def prior(self) -> Distribution:
        """The standard-normal prior :math:`q(z)` on the module's device and dtype."""
        p = next(self.parameters())
        zeros = torch.zeros(self.latent_dim, device=p.device, dtype=p.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def forward(self, x: Tensor, num_samples: int = 1) -> Tensor:
        return iwae_loss(x, self, num_samples)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, latent_dim={self.latent_dim}, likelihood={self.likelihood!r}"


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)
