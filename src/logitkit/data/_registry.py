"""The dataset registry's entries: provenance, licence, citation, fixed split, loader, obtain commands."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Dataset", "DatasetInfo", "DatasetMissing", "register"]

TASKS = ("multiclass", "multilabel")


class DatasetMissing(RuntimeError):
    """A registry dataset whose package is not on this machine; the message says how to obtain it."""


@dataclass(frozen=True)
class Dataset:
    """Arrays with a fixed train / validation / test split.

    ``x_*`` are float32 feature matrices ``(n, d)`` (images flattened). ``y_*`` are int64 class
    indices ``(n,)`` for ``task="multiclass"`` and 0/1 float32 matrices ``(n, L)`` for
    ``task="multilabel"``.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    split: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {self.task!r}")
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 2 or len(x) != len(y):
                raise ValueError(
                    f"x_{part}, y_{part}: expected a (n, d) matrix and n labels, got shapes "
                    f"{tuple(x.shape)} and {tuple(y.shape)}"
                )
            if self.task == "multilabel" and (y.ndim != 2 or y.shape[1] != self.num_classes):
                raise ValueError(
                    f"y_{part}: expected a (n, {self.num_classes}) 0/1 matrix, got {tuple(y.shape)}"
                )
            if self.task == "multiclass" and y.ndim != 1:
                raise ValueError(f"y_{part}: expected class indices (n,), got shape {tuple(y.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def sizes(self) -> tuple[int, int, int]:
        return len(self.y_train), len(self.y_val), len(self.y_test)

    def train_counts(self) -> np.ndarray:
        """Training examples per class (multiclass) or positives per label (multilabel)."""
        if self.task == "multilabel":
            return self.y_train.sum(0).astype(np.int64)
        return np.bincount(self.y_train, minlength=self.num_classes).astype(np.int64)

    def describe(self) -> str:
        n_train, n_val, n_test = self.sizes()
        kind = "labels" if self.task == "multilabel" else "classes"
        return (
            f"{self.name}: {n_train} train / {n_val} val / {n_test} test, "
            f"{self.num_features} features, {self.num_classes} {kind}"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: what the data is, where it comes from, how to load and obtain it."""

    name: str
    task: str
    title: str
    source: str  # the package that ships the data
    licence: str
    citation: str
    split: str  # the fixed, documented split
    shape: str  # published size, e.g. "2,417 x 103, 14 labels"
    loader: Callable[..., Dataset]
    available: Callable[[], bool]
    obtain: tuple[str, ...] = ()  # the exact commands that make it available
    embedded: bool = False  # ships with a dependency of the experiments extra
    params: dict = field(default_factory=dict)  # default loader keyword arguments

    def load(self, **params) -> Dataset:
        if not self.available():
            raise DatasetMissing(
                f"dataset {self.name!r} is not on this machine (it ships in {self.source}); "
                "obtain it with:\n  " + "\n  ".join(self.obtain)
            )
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(
                f"dataset {self.name!r}: unknown parameter(s) {sorted(unknown)}; "
                f"expected some of {sorted(self.params) or 'none'}"
            )
        return self.loader(**{**self.params, **params})


_REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a registry entry."""
    if info.task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {info.task!r}")
    _REGISTRY[info.name] = info
    return info


# --------------------------------------------------------------------------- split helpers


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of a seeded split that keeps class proportions (per class: shuffle, then cut).

    ``fractions`` are the sizes of all but the last part; the last part gets the rest.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.cumsum([round(f * len(idx)) for f in fractions])
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def random_split(n: int, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Indices of a seeded random split of ``range(n)``: parts of the given sizes, then the rest."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum(sizes)
    return [np.sort(p) for p in np.split(order, cuts)]


def make_dataset(info_name: str, task: str, x, y, parts, class_names, split, params=None) -> Dataset:
    """A Dataset from full arrays and (train, val, test) index arrays."""
    tr, va, te = parts
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if task == "multilabel" else np.int64)
    return Dataset(
        name=info_name,
        task=task,
        x_train=x[tr],
        y_train=y[tr],
        x_val=x[va],
        y_val=y[va],
        x_test=x[te],
        y_test=y[te],
        class_names=tuple(class_names),
        split=split,
        params=dict(params or {}),
    )


def replace(dataset: Dataset, **changes) -> Dataset:
    return dataclasses.replace(dataset, **changes)
