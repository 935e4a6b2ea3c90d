"""Lookups in the dataset registry: every loader module registers its entries when first asked.

The loader modules import :mod:`logitkit.data._registry` to register; this module imports them, so
the registry itself never imports a loader (no import cycle, no data code run at ``import logitkit``).
"""

from __future__ import annotations

from logitkit.data._registry import _REGISTRY, Dataset, DatasetInfo

__all__ = ["get", "load", "names", "status"]

_POPULATED = False


def _populate() -> None:
    global _POPULATED
    if _POPULATED:
        return
    _POPULATED = True
    from logitkit.data import fashion_mnist, mlbench, multilabel, sklearn_digits  # noqa: F401


def names() -> list[str]:
    """Every registry dataset's name."""
    _populate()
    return list(_REGISTRY)


def get(name: str) -> DatasetInfo:
    """The registry entry called ``name``."""
    _populate()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"dataset: expected one of {sorted(_REGISTRY)}, got {name!r}") from None


def load(name: str, **params) -> Dataset:
    """Load a registry dataset by name (keyword ``params`` such as ``imbalance=10`` where supported)."""
    return get(name).load(**params)


def status() -> list[tuple[DatasetInfo, bool]]:
    """Every registry entry with whether it is available here."""
    _populate()
    return [(info, bool(info.available())) for info in _REGISTRY.values()]
