"""scikit-learn's bundled UCI optical digits: the embedded multi-class default, and digits-LT.

``sklearn/datasets/data/digits.csv.gz`` ships in the scikit-learn wheel (BSD-3-Clause): 1,797 8x8
images (64 features, values 0..16), 10 classes of 174-183 images. It has no official split; the
fixed split (seed 0, per class) keeps 50 test and 20 validation images per class (500 / 200,
balanced) and trains on the rest. digits-LT draws the training set from that pool with the
exponential long-tail profile (:mod:`logitkit.data.longtail`), ``n_max`` = the smallest pool (104).
"""

from __future__ import annotations

import numpy as np

from logitkit.data._paths import package_file
from logitkit.data._registry import DatasetInfo, make_dataset, register
from logitkit.data.longtail import longtail_indices

CITATION = (
    "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
    "Repository, 1998. doi:10.24432/C50P49"
)
SPLIT_SEED = 0
TEST_PER_CLASS, VAL_PER_CLASS = 50, 20


def _available() -> bool:
    return package_file("sklearn", "datasets", "data", "digits.csv.gz") is not None


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    path = package_file("sklearn", "datasets", "data", "digits.csv.gz")
    data = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return data[:, :-1].astype(np.float32), data[:, -1].astype(np.int64)


def _balanced_split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    test, val, pool = [], [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        test.append(idx[:TEST_PER_CLASS])
        val.append(idx[TEST_PER_CLASS : TEST_PER_CLASS + VAL_PER_CLASS])
        pool.append(idx[TEST_PER_CLASS + VAL_PER_CLASS :])
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(val)), np.sort(np.concatenate(test))


def load_digits():
    x, y = _arrays()
    parts = _balanced_split(y)
    split = "fixed seeded split (seed 0): 50 test and 20 validation images per class, the rest train"
    return make_dataset("digits", "multiclass", x, y, parts, [str(c) for c in range(10)], split)


def load_digits_lt(imbalance: float = 100.0):
    x, y = _arrays()
    pool, val, test = _balanced_split(y)
    keep = pool[longtail_indices(y[pool], imbalance, seed=SPLIT_SEED)]
    split = (
        f"train: exponential long tail, imbalance {imbalance:g}, from the digits training pool "
        "(n_max = 104, seed 0); balanced validation 200 and test 500 as in `digits`"
    )
    return make_dataset(
        "digits-lt",
        "multiclass",
        x,
        y,
        (keep, val, test),
        [str(c) for c in range(10)],
        split,
        {"imbalance": imbalance},
    )


_COMMON = dict(
    source="scikit-learn (PyPI wheel: sklearn/datasets/data/digits.csv.gz)",
    licence="BSD-3-Clause (scikit-learn); UCI data, CC BY 4.0",
    citation=CITATION,
    available=_available,
    obtain=("pip install scikit-learn",),
    embedded=True,
)

register(
    DatasetInfo(
        name="digits",
        task="multiclass",
        title="UCI optical digits (8x8), balanced",
        split="50 test / 20 validation per class (seed 0), 1,097 train",
        shape="1,797 x 64, 10 classes",
        loader=load_digits,
        **_COMMON,
    )
)
register(
    DatasetInfo(
        name="digits-lt",
        task="multiclass",
        title="digits-LT: exponential long tail (imbalance 100 by default)",
        split="train 104 ... 1 per class at imbalance 100; balanced 200 validation / 500 test",
        shape="254 train at imbalance 100, 64 features, 10 classes",
        loader=load_digits_lt,
        params={"imbalance": 100.0},
        **_COMMON,
    )
)
