"""Your own data: CSV files and NumPy ``.npz`` archives become a :class:`Dataset`.

* ``.npz`` with ``x`` and ``y`` (split here), or with ``x_train, y_train, x_test, y_test`` and
  optionally ``x_val, y_val``. ``y`` is class indices ``(n,)`` (multi-class) or a 0/1 matrix
  ``(n, L)`` (multi-label).
* ``.csv`` with a header row: the target is the column(s) named by ``target`` (default: every column
  whose name starts with ``label``, else the last column). One integer/string target column gives a
  multi-class task; several 0/1 target columns a multi-label task. The other columns must be
  numeric features.

Missing validation / test parts are carved with a fixed seed: test 20%, then validation 20% of the
rest (stratified for multi-class data).
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Sequence

import numpy as np

from logitkit.data._registry import Dataset, make_dataset, random_split, stratified_split

__all__ = ["from_arrays", "from_csv", "from_npz", "load_file"]


def _task(y: np.ndarray) -> str:
    return "multilabel" if y.ndim == 2 and y.shape[1] > 1 else "multiclass"


def _encode_classes(y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    values, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), [str(v) for v in values]


def from_arrays(
    x,
    y,
    *,
    name: str = "custom",
    x_val=None,
    y_val=None,
    x_test=None,
    y_test=None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
) -> Dataset:
    """A Dataset from arrays; missing validation / test parts are split off ``(x, y)`` with ``seed``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim > 2:
        x = x.reshape(len(x), -1)
    task = _task(y)
    if task == "multiclass":
        y = y.reshape(-1)
        pieces = [y] + [np.asarray(p).reshape(-1) for p in (y_val, y_test) if p is not None]
        codes, names = _encode_classes(np.concatenate(pieces))
        offsets = np.cumsum([len(p) for p in pieces])[:-1]
        y, *rest = np.split(codes, offsets)
        it = iter(rest)
        y_val = next(it) if y_val is not None else None
        y_test = next(it) if y_test is not None else None
        class_names = list(class_names) if class_names is not None else names
    else:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y: expected a 0/1 label matrix for multi-label data, got other values")
        class_names = (
            list(class_names) if class_names is not None else [f"label{i}" for i in range(y.shape[1])]
        )

    def split(n_labels, labels, fraction, seed):
        if task == "multiclass":
            return stratified_split(labels, [fraction], seed)[::-1]
        held, kept = random_split(n_labels, [round(fraction * n_labels)], seed)
        return kept, held

    if x_test is None:
        keep, test = split(len(y), y, 0.2, seed)
        x, y, x_test, y_test = x[keep], y[keep], x[test], y[test]
    if x_val is None:
        keep, val = split(len(y), y, 0.2, seed + 1)
        x, y, x_val, y_val = x[keep], y[keep], x[val], y[val]
    x_all = np.concatenate(
        [
            x,
            np.asarray(x_val, np.float64).reshape(len(y_val), -1),
            np.asarray(x_test, np.float64).reshape(len(y_test), -1),
        ]
    )
    y_all = np.concatenate([y, y_val, y_test])
    n1, n2 = len(y), len(y) + len(y_val)
    parts = (np.arange(n1), np.arange(n1, n2), np.arange(n2, len(y_all)))
    split_text = f"user data; parts not given were split off with seed {seed} (test 20%, validation 20%)"
    return make_dataset(name, task, x_all, y_all, parts, class_names, split_text)


def from_npz(path, *, seed: int = 0) -> Dataset:
    """A Dataset from a NumPy ``.npz`` archive (keys ``x, y`` or ``x_train, y_train, x_test, y_test``)."""
    path = pathlib.Path(path)
    with np.load(path, allow_pickle=False) as a:
        keys = set(a.files)
        if {"x_train", "y_train"} <= keys:
            get = {k: a[k] for k in keys}
            return from_arrays(
                get["x_train"],
                get["y_train"],
                name=path.stem,
                x_val=get.get("x_val"),
                y_val=get.get("y_val"),
                x_test=get.get("x_test"),
                y_test=get.get("y_test"),
                seed=seed,
            )
        if {"x", "y"} <= keys:
            return from_arrays(a["x"], a["y"], name=path.stem, seed=seed)
    raise ValueError(
        f"{path}: expected arrays x, y or x_train, y_train (, x_test, y_test), got {sorted(keys)}"
    )


def from_csv(path, *, target: Sequence[str] | str | None = None, seed: int = 0) -> Dataset:
    """A Dataset from a CSV file with a header row (see the module docstring for the target rule)."""
    path = pathlib.Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and data rows, got {len(rows)} row(s)")
    header, body = rows[0], rows[1:]
    if isinstance(target, str):
        target = [t.strip() for t in target.split(",")]
    if target is None:
        target = [h for h in header if h.lower().startswith("label")] or [header[-1]]
    missing = [t for t in target if t not in header]
    if missing:
        raise ValueError(f"target: expected column names from {header}, got {missing}")
    t_idx = [header.index(t) for t in target]
    f_idx = [i for i in range(len(header)) if i not in t_idx]
    try:
        x = np.array([[float(r[i]) for i in f_idx] for r in body], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: feature columns must be numeric ({error})") from None
    if len(t_idx) == 1:
        y = np.array([r[t_idx[0]] for r in body])
        return from_arrays(x, y, name=path.stem, seed=seed)
    y = np.array([[float(r[i]) for i in t_idx] for r in body])
    return from_arrays(x, y, name=path.stem, class_names=target, seed=seed)


def load_file(path, *, target=None, seed: int = 0) -> Dataset:
    """``from_csv`` or ``from_npz`` by file extension."""
    suffix = pathlib.Path(path).suffix.lower()
    if suffix == ".npz":
        return from_npz(path, seed=seed)
    if suffix in (".csv", ".txt"):
        return from_csv(path, target=target, seed=seed)
    raise ValueError(f"dataset file: expected a .csv or .npz file, got {path}")
