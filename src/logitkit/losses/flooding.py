r"""Flooding: keep the training loss from going below a level :math:`b`.

.. math::

    \tilde{\mathcal L}(\theta) = |\mathcal L(\theta) - b| + b,
    \qquad
    \nabla \tilde{\mathcal L} = \mathrm{sign}(\mathcal L - b)\, \nabla \mathcal L .

Above the flood level training is ordinary gradient descent; below it the gradient flips and
the step is gradient *ascent*, so the loss floats around :math:`b` instead of reaching zero.

Gradient-penalty reading (post 7643). Once the loss hovers at :math:`b`, a descent step with
learning rate :math:`\varepsilon` is followed by an ascent step, and to first order the pair is

.. math::

    \theta_{n+1} \approx \theta_{n-1} - \frac{\varepsilon^2}{2} \nabla \Vert \nabla
    \mathcal L(\theta_{n-1}) \Vert^2,

gradient descent on the squared gradient norm with step :math:`\varepsilon^2 / 2` (not
:math:`\varepsilon^2`: :math:`(\nabla g) g = H g = \tfrac12 \nabla\Vert g\Vert^2` because
:math:`g` is a gradient), i.e. a push towards flat minima. The asymmetric alternation without a
level (descend with :math:`\varepsilon_1`, ascend with :math:`\varepsilon_2 < \varepsilon_1`) is,
to first order, descent with step :math:`\varepsilon_1 - \varepsilon_2` on
:math:`\mathcal L + \frac{\varepsilon_1 \varepsilon_2}{2(\varepsilon_1 - \varepsilon_2)}
\Vert\nabla\mathcal L\Vert^2`. Both expansions are checked numerically in the tests
(``tests/losses/test_flooding.py``); the analysis assumes plain SGD.

Reference: T. Ishida et al., "Do We Need Zero Training Loss After Achieving Zero Training Error?"
(ICML 2020, arXiv 2002.08709); J. Su, "我们真的需要把训练集的损失降低到零吗？"
(kexue.fm/archives/7643, 2020).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from logitkit import _checks

__all__ = ["Flooding", "flooding"]


def flooding(loss: Tensor, level: float) -> Tensor:
    r"""Flooded loss :math:`|\mathcal L - b| + b`, with the flood level :math:`b` = ``level``.

    .. math::

        \tilde{\mathcal L} = |\mathcal L - b| + b \ \ge b, \qquad
        \frac{\partial \tilde{\mathcal L}}{\partial \mathcal L} = \mathrm{sign}(\mathcal L - b)

    (0 exactly at :math:`\mathcal L = b`, torch's sub-gradient of ``abs``). ``level=0`` returns
    ``loss`` itself (the identity for a non-negative loss).

    Args:
        loss: the **reduced** batch loss (a scalar) before ``backward()``, as in the paper. Applied
            to per-sample losses (``reduction="none"``) it floods each sample separately, which is a
            different method (iFlood, ICLR 2022). With ``reduction="sum"`` the level must scale
            with the batch size.
        level: :math:`b \ge 0`. No default: the paper searches :math:`b \in \{0, 0.01, \dots,
            0.1\}` on validation data.

    Returns:
        A tensor shaped like ``loss``.

    Example:
        >>> import torch
        >>> flooding(torch.tensor(0.30), level=0.1)
        tensor(0.3000)
        >>> flooding(torch.tensor(0.02), level=0.1)
        tensor(0.1800)

    Reference: Ishida et al., ICML 2020; kexue.fm/archives/7643.
    """
    _checks.check_floating(loss, "loss")
    _checks.check_number(level, "level", low=0.0)
    if level == 0:
        return loss
    return (loss - level).abs() + level


class Flooding(nn.Module):
    """Flood any loss Module: ``Flooding(base_loss, level)(*args)`` is
    ``flooding(base_loss(*args), level)``.

    Example:
        >>> import torch
        >>> criterion = Flooding(torch.nn.CrossEntropyLoss(), level=0.05)
        >>> criterion(torch.tensor([[9.0, 0.0]]), torch.tensor([0])) > 0.05
        tensor(True)
    """

    def __init__(self, base_loss: nn.Module, level: float) -> None:
        super().__init__()
        if not callable(base_loss):
            raise TypeError(f"base_loss: expected a loss Module or callable, got {base_loss!r}")
        _checks.check_number(level, "level", low=0.0)
        self.base_loss = base_loss
        self.level = level

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return flooding(self.base_loss(*args, **kwargs), self.level)

    def extra_repr(self) -> str:
        return f"level={self.level!r}"
