r"""Smooth approximations of non-smooth functions by approximate identities (mollifiers).

If :math:`\varphi_\tau \to \delta` as :math:`\tau \to 0^+`, then :math:`g = f * \varphi_\tau`,
:math:`g(x) = \int f(y)\, \varphi_\tau(x - y)\, dy`, is smooth and tends to :math:`f` at every
point of continuity. With :math:`\Phi` the CDF of the kernel and :math:`\theta` the unit step,
:math:`\theta * \varphi_\tau = \Phi(x/\tau)`, and every closed form below follows. Kernels
(``kernel``), each with width ``temperature`` :math:`= \tau`:

* ``"logistic"``: :math:`\varphi(x) = \frac{d}{dx}\sigma(x)` (the derivative of a sigmoid;
  the post's :math:`t = 1/\tau`), :math:`\Phi = \sigma`;
* ``"gaussian"``: :math:`\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}`, :math:`\Phi(x) = \tfrac12(1 +
  \mathrm{erf}(x/\sqrt2))` (:math:`\tau = \sigma`);
* ``"cauchy"``: :math:`\varphi(x) = \frac{1}{\pi(1 + x^2)}`,
  :math:`\Phi(x) = \tfrac12 + \arctan(x)/\pi` (heavy tails: its convolution with :math:`[x]_+`
  diverges, so it is offered only where the result is finite).

Functions: :func:`smooth_step`, :func:`smooth_sign`, :func:`smooth_relu`, :func:`smooth_abs`,
:func:`smooth_clip`, :func:`smooth_floor`, :func:`smooth_round`. ``smooth_relu`` and
``smooth_abs`` also offer ``form="step"``, which smooths only the step in
:math:`[x]_+ = x\,\theta(x)` (Swish, GELU) instead of convolving the whole function.

All are elementwise, keep the input's shape and dtype (half precision computed in float32) and
recover the hard function as :math:`\tau \to 0^+`. Infinite inputs give the limits (e.g.
``smooth_clip(inf) = max``, ``smooth_floor(-inf) = -inf``) with zero gradient.

Reference: J. Su, "用狄拉克函数来构造非光滑函数的光滑近似" (kexue.fm/archives/8718, 2021), after
SAU (Biswas et al., arXiv 2109.13210); "寻求一个光滑的最大值函数" (kexue.fm/archives/3290).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from logitkit import _checks

__all__ = [
    "SmoothAbs",
    "SmoothClip",
    "SmoothFloor",
    "SmoothReLU",
    "SmoothRound",
    "SmoothSign",
    "SmoothStep",
    "smooth_abs",
    "smooth_clip",
    "smooth_floor",
    "smooth_relu",
    "smooth_round",
    "smooth_sign",
    "smooth_step",
]

KERNELS = ("logistic", "gaussian", "cauchy")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
INF = float("inf")


def _finite(x: Tensor) -> Tensor:
    """``x`` with infinities replaced by 0 (their outputs are set by :func:`_limits`)."""
    return torch.where(torch.isinf(x), 0.0, x)


def _limits(out: Tensor, x: Tensor, at_neg: float | Tensor, at_pos: float | Tensor) -> Tensor:
    """``out`` with the function's limits at ``x = -inf`` / ``+inf`` (zero gradient there)."""
    return torch.where(x == INF, at_pos, torch.where(x == -INF, at_neg, out))


def _prepare(
    input: Tensor, temperature: float | Tensor, kernel: str, allowed=KERNELS
) -> tuple[Tensor, Tensor | float]:
    _checks.check_floating(input, "input")
    _checks.check_one_of(kernel, "kernel", allowed)
    _checks.check_temperature(temperature, input)
    work = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
    x = input.to(work)
    if isinstance(temperature, Tensor):
        return x, temperature.to(work)
    return x, float(temperature)


def _cdf(u: Tensor, kernel: str) -> Tensor:
    """:math:`\\Phi(u)` of the unit-width kernel."""
    if kernel == "logistic":
        return torch.sigmoid(u)
    if kernel == "gaussian":
        return torch.special.ndtr(u)
    return 0.5 + torch.atan(u) / math.pi


def _relu_conv(x: Tensor, tau: Tensor | float, kernel: str) -> Tensor:
    """:math:`[x]_+ * \\varphi_\\tau` (logistic / gaussian), an antiderivative of :math:`\\Phi(x/\\tau)`."""
    u = x / tau
    if kernel == "logistic":
        return tau * torch.logaddexp(u, torch.zeros_like(u))  # exact (F.softplus is linear past 20)
    if kernel == "gaussian":
        return x * torch.special.ndtr(u) + tau * _INV_SQRT_2PI * torch.exp(-0.5 * u * u)
    # Cauchy: the convolution diverges; x Phi(x/tau) - (tau / 2 pi) log(1 + (x/tau)^2) is an
    # antiderivative of Phi(x/tau), good for differences (clip).
    return x * _cdf(u, "cauchy") - tau / (2.0 * math.pi) * torch.log1p(u * u)


def _relu_conv_excess(t: Tensor, tau: Tensor | float, kernel: str) -> Tensor:
    r""":func:`_relu_conv` minus :math:`[t]_+`, computed without cancellation for large
    :math:`|t|` (uses :math:`t\Phi(u) - [t]_+ = -|t|\,\Phi(-|u|)`)."""
    u = t / tau
    if kernel == "logistic":
        return tau * torch.nn.functional.softplus(-u.abs())
    tail = t.abs() * _cdf(-u.abs(), kernel)
    if kernel == "gaussian":
        return tau * _INV_SQRT_2PI * torch.exp(-0.5 * u * u) - tail
    return -tail - tau / (2.0 * math.pi) * torch.log1p(u * u)


def smooth_step(input: Tensor, *, temperature: float | Tensor = 1.0, kernel: str = "logistic") -> Tensor:
    r"""Smooth unit step :math:`\theta(x) = \mathbf 1[x > 0]`: :math:`\Phi(x/\tau) = \theta * \varphi_\tau`.

    ``"logistic"`` gives :math:`\sigma(x/\tau)`, ``"gaussian"`` :math:`\Phi_{\mathcal N}(x/\tau)`,
    ``"cauchy"`` :math:`\tfrac12 + \arctan(x/\tau)/\pi`. The value at 0 is :math:`\tfrac12`.

    Args:
        input: any shape.
        temperature: kernel width :math:`\tau > 0` (float or tensor broadcastable to ``input``).
        kernel: ``"logistic"`` (default), ``"gaussian"`` or ``"cauchy"``.

    Example:
        >>> smooth_step(torch.tensor([-1.0, 0.0, 1.0]), temperature=0.1)
        tensor([4.5398e-05, 5.0000e-01, 9.9995e-01])

    Reference: J. Su, kexue.fm/archives/8718.
    """
    x, tau = _prepare(input, temperature, kernel)
    return _cdf(x / tau, kernel).to(input.dtype)


def smooth_sign(input: Tensor, *, temperature: float | Tensor = 1.0, kernel: str = "logistic") -> Tensor:
    r"""Smooth sign :math:`2\theta(x) - 1`: :math:`2\Phi(x/\tau) - 1`.

    ``"logistic"``: :math:`\tanh(x / 2\tau)`; ``"gaussian"``: :math:`\mathrm{erf}(x/\sqrt2\tau)`;
    ``"cauchy"``: :math:`\tfrac2\pi \arctan(x/\tau)`. Odd, in (-1, 1), 0 at 0.

    Example:
        >>> smooth_sign(torch.tensor([-2.0, 0.0, 0.5]), temperature=0.5)
        tensor([-0.9640,  0.0000,  0.4621])

    Reference: J. Su, kexue.fm/archives/8718 and 3290.
    """
    x, tau = _prepare(input, temperature, kernel)
    u = x / tau
    if kernel == "logistic":
        out = torch.tanh(0.5 * u)
    elif kernel == "gaussian":
        out = torch.erf(u / _SQRT2)
    else:
        out = torch.atan(u) * (2.0 / math.pi)
    return out.to(input.dtype)


def smooth_relu(
    input: Tensor,
    *,
    temperature: float | Tensor = 1.0,
    kernel: str = "logistic",
    form: str = "convolve",
) -> Tensor:
    r"""Smooth ReLU :math:`[x]_+`.

    ``form="convolve"`` (:math:`[x]_+ * \varphi_\tau`, an upper bound of ReLU, convex):

    .. math::

        \text{logistic: } \tau\log(1 + e^{x/\tau}) \ (\text{softplus}), \qquad
        \text{gaussian: } x\,\Phi(x/\tau) + \tau\,\varphi(x/\tau).

    ``form="step"`` (:math:`x \cdot \Phi(x/\tau)`, below ReLU everywhere, negative for
    :math:`x < 0`): ``"logistic"`` gives Swish :math:`x\sigma(x/\tau)`, ``"gaussian"`` gives GELU
    (:math:`\tau = 1` is ``F.gelu(approximate="none")``), ``"cauchy"`` is allowed here only.

    Args:
        input: any shape.
        temperature: kernel width :math:`\tau > 0`.
        kernel: ``"logistic"`` (default), ``"gaussian"``; ``"cauchy"`` with ``form="step"``.
        form: ``"convolve"`` (default) or ``"step"``.

    Example:
        >>> x = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
        >>> smooth_relu(x, temperature=0.7, kernel="gaussian")
        tensor([0.0241, 0.4545, 2.0004], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/8718.
    """
    _checks.check_one_of(form, "form", ("convolve", "step"))
    allowed = KERNELS if form == "step" else ("logistic", "gaussian")
    x, tau = _prepare(input, temperature, kernel, allowed)
    xf = _finite(x)
    if form == "step":
        at_neg = -tau / math.pi if kernel == "cauchy" else 0.0  # x Phi(x / tau) as x -> -inf
        return _limits(xf * _cdf(xf / tau, kernel), x, at_neg, INF).to(input.dtype)
    return _limits(_relu_conv(xf, tau, kernel), x, 0.0, INF).to(input.dtype)


def smooth_abs(
    input: Tensor,
    *,
    temperature: float | Tensor = 1.0,
    kernel: str = "logistic",
    form: str = "convolve",
) -> Tensor:
    r"""Smooth absolute value :math:`|x| = [x]_+ + [-x]_+`.

    ``form="convolve"``: :math:`|x| * \varphi_\tau`, an upper bound with error :math:`O(\tau)`;
    ``"logistic"`` gives :math:`\tau\log(2 + e^{x/\tau} + e^{-x/\tau})` (post 3290, eq. 6;
    :math:`\tau\log 4` at 0), ``"gaussian"`` :math:`x(2\Phi(x/\tau) - 1) + 2\tau\varphi(x/\tau)`.
    ``form="step"``: :math:`x\,(2\Phi(x/\tau) - 1)`, e.g. :math:`x\tanh(x/2\tau)`, a lower bound
    that vanishes at 0 (any kernel).

    Example:
        >>> smooth_abs(torch.tensor([-3.0, 0.0, 0.5]), temperature=0.1)
        tensor([3.0000, 0.1386, 0.5013])

    Reference: J. Su, kexue.fm/archives/3290 and 8718.
    """
    _checks.check_one_of(form, "form", ("convolve", "step"))
    allowed = KERNELS if form == "step" else ("logistic", "gaussian")
    x, tau = _prepare(input, temperature, kernel, allowed)
    xf = _finite(x)
    if form == "step":
        return _limits(xf * (2.0 * _cdf(xf / tau, kernel) - 1.0), x, INF, INF).to(input.dtype)
    u = xf / tau
    if kernel == "logistic":
        # tau [softplus(u) + softplus(-u)] = |x| + 2 tau softplus(-|u|), overflow-free.
        out = xf.abs() + 2.0 * tau * torch.nn.functional.softplus(-u.abs())
    else:
        out = xf * (2.0 * torch.special.ndtr(u) - 1.0) + 2.0 * tau * _INV_SQRT_2PI * torch.exp(-0.5 * u * u)
    return _limits(out, x, INF, INF).to(input.dtype)


def smooth_clip(
    input: Tensor,
    min: float = 0.0,
    max: float = 1.0,
    *,
    temperature: float | Tensor = 1.0,
    kernel: str = "logistic",
) -> Tensor:
    r"""Smooth clip to :math:`[a, b]` (``min``, ``max``): the convolution of
    :math:`\mathrm{clip}(x, a, b) = a + [x - a]_+ - [x - b]_+` with :math:`\varphi_\tau`:

    .. math::

        a + \int_a^b \Phi\Big(\frac{x - u}{\tau}\Big)\, du = a + R(x - a) - R(x - b),

    :math:`R` an antiderivative of :math:`\Phi(\cdot/\tau)` (the smooth ReLU, or for ``"cauchy"``
    :math:`x\Phi(x/\tau) - \frac{\tau}{2\pi}\log(1 + x^2/\tau^2)`). Stays strictly inside
    :math:`(a, b)`, symmetric about :math:`(a + b)/2`.

    Example:
        >>> smooth_clip(torch.tensor([-1.0, 0.5, 3.0]), 0.0, 1.0, temperature=0.05)
        tensor([1.0306e-10, 5.0000e-01, 1.0000e+00])

    Reference: J. Su, kexue.fm/archives/8718.
    """
    for name, value in (("min", min), ("max", max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"{name}: expected a finite number, got {value!r}")
    if not min < max:
        raise ValueError(f"max: expected a value greater than min={min!r}, got {max!r}")
    x, tau = _prepare(input, temperature, kernel)
    xf = _finite(x)
    # a + [x - a]_+ - [x - b]_+ is the hard clip: taken directly, only the small excesses of the
    # two smooth ReLUs are subtracted (no cancellation for |x| >> b - a).
    excess = _relu_conv_excess(xf - min, tau, kernel) - _relu_conv_excess(xf - max, tau, kernel)
    out = (torch.clamp(xf, min, max) + excess).clamp(min, max)  # rounding of tiny excesses
    return _limits(out, x, float(min), float(max)).to(input.dtype)


def _window(temperature: float | Tensor, kernel: str, dtype: torch.dtype, window: int | None) -> int:
    """Terms on each side of :math:`\\lfloor x \\rfloor` whose kernel tails are above rounding."""
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected a positive int, got {window!r}")
        return window
    if isinstance(temperature, Tensor):
        if torch.compiler.is_compiling():
            raise ValueError("window: pass an int window when temperature is a tensor under torch.compile")
        temperature = float(temperature.detach().max())
    eps = torch.finfo(dtype).eps
    # Distance (in kernel widths) beyond which 1 - Phi < eps / 4.
    reach = -math.log(eps / 4) if kernel == "logistic" else math.sqrt(-2.0 * math.log(eps / 4))
    return math.ceil(reach * temperature) + 1


def smooth_floor(
    input: Tensor,
    *,
    temperature: float | Tensor = 0.1,
    kernel: str = "logistic",
    window: int | None = None,
) -> Tensor:
    r"""Smooth floor: :math:`\lfloor\cdot\rfloor * \varphi_\tau`.

    .. math::

        \lfloor x \rfloor_\tau = \sum_{n\in\mathbb Z} n\,\big[\Phi(\tfrac{x-n}{\tau}) -
        \Phi(\tfrac{x-n-1}{\tau})\big] = c + \sum_{j} \Big[\Phi\Big(\frac{x - c - j}{\tau}\Big) -
        \mathbf 1[j \le 0]\Big], \quad c = \lfloor x \rfloor,

    the telescoped series of the post, re-centred at :math:`\lfloor x \rfloor` so that it is valid
    for every :math:`x` (the post's truncation :math:`-M-1+\sum_{n=-M}^{N}\Phi(x-n)` holds only
    inside :math:`(-M, N)`). ``window`` terms are kept on each side (default: where the kernel's
    tails drop below rounding, about :math:`37\tau` for ``"logistic"``, :math:`9\tau` for
    ``"gaussian"`` in float64), so the truncation is exact to rounding. Half-way (:math:`n - \tfrac12`)
    at each integer :math:`n`; :math:`\lfloor x + 1\rfloor_\tau = \lfloor x\rfloor_\tau + 1`.

    Args:
        input: any shape.
        temperature: kernel width :math:`\tau > 0` (default 0.1, the post's :math:`t = 10`).
        kernel: ``"logistic"`` (default) or ``"gaussian"``.
        window: number of terms on each side (an int; required for a tensor temperature under
            ``torch.compile``).

    Example:
        >>> smooth_floor(torch.tensor([-2.7, 0.0, 1.2, 3.99], dtype=torch.float64))
        tensor([-3.0465, -0.5000,  0.8811,  3.4750], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/8718.
    """
    x, tau = _prepare(input, temperature, kernel, ("logistic", "gaussian"))
    reach = _window(temperature, kernel, x.dtype, window)
    xf = _finite(x)
    c = torch.floor(xf.detach())
    y = xf - c  # in [0, 1); carries the gradient
    total = torch.zeros_like(x)
    for j in range(-reach, reach + 2):
        term = _cdf((y - j) / tau, kernel)
        total = total + (term - 1.0 if j <= 0 else term)
    return _limits(c + total, x, -INF, INF).to(input.dtype)


def smooth_round(
    input: Tensor,
    *,
    temperature: float | Tensor = 0.1,
    kernel: str = "logistic",
    window: int | None = None,
) -> Tensor:
    r"""Smooth rounding: :math:`\mathrm{round}_\tau(x) = \lfloor x + \tfrac12 \rfloor_\tau`
    (:func:`smooth_floor` shifted; half-way values at :math:`n + \tfrac12`).

    Example:
        >>> smooth_round(torch.tensor([0.2, 0.5, 2.9]), temperature=0.05)
        tensor([2.4718e-03, 5.0000e-01, 2.9997e+00])

    Reference: J. Su, kexue.fm/archives/8718.
    """
    _checks.check_floating(input, "input")
    return smooth_floor(input + 0.5, temperature=temperature, kernel=kernel, window=window)


# --------------------------------------------------------------------------------------------
# Modules (activations)
# --------------------------------------------------------------------------------------------


class _Smooth(nn.Module):
    _fn = staticmethod(smooth_step)

    def __init__(self, *, temperature: float | Tensor = 1.0, kernel: str = "logistic", **options) -> None:
        super().__init__()
        _checks.check_positive(temperature, "temperature")
        _checks.check_one_of(kernel, "kernel", KERNELS)
        self.kernel = kernel
        self.options = options
        if isinstance(temperature, nn.Parameter):
            self.temperature = temperature
        elif isinstance(temperature, Tensor):
            self.register_buffer("temperature", temperature)
        else:
            self.temperature = float(temperature)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, temperature=self.temperature, kernel=self.kernel, **self.options)

    def extra_repr(self) -> str:
        t = self.temperature
        t = t.tolist() if isinstance(t, Tensor) else t
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"temperature={t}, kernel={self.kernel!r}{extra}"


class SmoothStep(_Smooth):
    """Module form of :func:`smooth_step`."""

    _fn = staticmethod(smooth_step)


class SmoothSign(_Smooth):
    """Module form of :func:`smooth_sign`."""

    _fn = staticmethod(smooth_sign)


class SmoothReLU(_Smooth):
    """Module form of :func:`smooth_relu` (``form="convolve"`` or ``"step"``)."""

    _fn = staticmethod(smooth_relu)

    def __init__(
        self, *, temperature: float | Tensor = 1.0, kernel: str = "logistic", form: str = "convolve"
    ) -> None:
        _checks.check_one_of(form, "form", ("convolve", "step"))
        super().__init__(temperature=temperature, kernel=kernel, form=form)


class SmoothAbs(_Smooth):
    """Module form of :func:`smooth_abs`."""

    _fn = staticmethod(smooth_abs)

    def __init__(
        self, *, temperature: float | Tensor = 1.0, kernel: str = "logistic", form: str = "convolve"
    ) -> None:
        _checks.check_one_of(form, "form", ("convolve", "step"))
        super().__init__(temperature=temperature, kernel=kernel, form=form)


class SmoothClip(_Smooth):
    """Module form of :func:`smooth_clip`."""

    _fn = staticmethod(smooth_clip)

    def __init__(
        self,
        min: float = 0.0,
        max: float = 1.0,
        *,
        temperature: float | Tensor = 1.0,
        kernel: str = "logistic",
    ) -> None:
        super().__init__(temperature=temperature, kernel=kernel)
        self.min, self.max = min, max

    def forward(self, input: Tensor) -> Tensor:
        return smooth_clip(input, self.min, self.max, temperature=self.temperature, kernel=self.kernel)

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}, " + super().extra_repr()


class SmoothFloor(_Smooth):
    """Module form of :func:`smooth_floor`."""

    _fn = staticmethod(smooth_floor)

    def __init__(
        self, *, temperature: float | Tensor = 0.1, kernel: str = "logistic", window: int | None = None
    ) -> None:
        super().__init__(temperature=temperature, kernel=kernel, window=window)


class SmoothRound(SmoothFloor):
    """Module form of :func:`smooth_round`."""

    _fn = staticmethod(smooth_round)
