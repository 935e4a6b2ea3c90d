"""Base class of the loss Modules: configuration as attributes, tensors as buffers."""

from __future__ import annotations

from torch import Tensor, nn

from logitkit import _checks


class Loss(nn.Module):
    """Stores ``reduction`` and registers an optional per-class ``weight`` as a buffer.

    Buffers follow ``.to()`` / ``.cuda()`` and are saved in ``state_dict``; losses own no
    parameters.
    """

    weight: Tensor | None

    def __init__(self, *, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        _checks.check_reduction(reduction)
        if weight is not None:
            _checks.check_floating(weight, "weight")
        self.reduction = reduction
        self.register_buffer("weight", weight)

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        for key, value in vars(self).items():
            if key.startswith("_") or key in ("training", "reduction"):
                continue
            parts.append(f"{key}={value!r}")
        if self.weight is not None:
            parts.append(f"weight=Tensor(shape={tuple(self.weight.shape)})")
        return ", ".join(parts)
