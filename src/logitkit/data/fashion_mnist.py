"""Fashion-MNIST (Debian ``dataset-fashion-mnist``) and Fashion-MNIST-LT.

Files ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (IDX:
16-byte image header, 8-byte label header, then uint8): 60,000 train / 10,000 test 28x28 images,
10 balanced classes. Features are the 784 pixels scaled to [0, 1].

Split: the official 60,000 / 10,000; 100 images per class (seed 0) of the official test set are
held out as a balanced validation set, so the test set has 9,000 balanced images. (Carving the
validation set from the test images keeps the long-tailed training set exactly the published
profile: at imbalance 100 the head class uses all 6,000 of its training images.) Fashion-MNIST-LT
keeps the first ``n_c = floor(6000 * imbalance ** (-c / 9))`` training images of class ``c`` after a
seeded shuffle (seed 0): 14,886 images at imbalance 100, 16,796 at 50, 24,516 at 10.
"""

from __future__ import annotations

import gzip

import numpy as np

from logitkit.data._paths import cached_arrays, debian_file
from logitkit.data._registry import DatasetInfo, make_dataset, register
from logitkit.data.longtail import longtail_indices

ROOT = "usr/share/datasets/fashion-mnist/"
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)  # fmt: skip
SPLIT_SEED = 0
VAL_PER_CLASS = 100


def _available() -> bool:
    return all(debian_file(ROOT + f) is not None for f in FILES.values())


def _read_idx(name: str) -> np.ndarray:
    raw = gzip.decompress(debian_file(ROOT + FILES[name]).read_bytes())
    if name.startswith("x"):
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28 * 28)
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def raw_arrays() -> dict[str, np.ndarray]:
    """The official arrays: ``x_*`` uint8 ``(n, 784)``, ``y_*`` int64 ``(n,)``."""
    return cached_arrays("fashion-mnist-debian-20200523", lambda: {k: _read_idx(k) for k in FILES})


def _val_test_split(y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    val = []
    for c in range(10):
        idx = np.flatnonzero(y_test == c)
        val.append(idx[rng.permutation(len(idx))][:VAL_PER_CLASS])
    val = np.sort(np.concatenate(val))
    return val, np.setdiff1d(np.arange(len(y_test)), val)


def _build(name: str, train_idx: np.ndarray | None, split: str, params: dict):
    a = raw_arrays()
    n_train = len(a["y_train"])
    x = np.concatenate([a["x_train"], a["x_test"]]).astype(np.float32) / 255.0
    y = np.concatenate([a["y_train"], a["y_test"]])
    val, test = _val_test_split(a["y_test"])
    train = np.arange(n_train) if train_idx is None else train_idx
    return make_dataset(
        name, "multiclass", x, y, (train, val + n_train, test + n_train), CLASSES, split, params
    )


def load_fashion_mnist():
    return _build(
        "fashion-mnist",
        None,
        "official 60,000 train; official test split into 1,000 validation (100/class, seed 0) / 9,000 test",
        {},
    )


def load_fashion_mnist_lt(imbalance: float = 100.0):
    keep = longtail_indices(raw_arrays()["y_train"], imbalance, n_max=6000, seed=SPLIT_SEED)
    split = (
        f"train: exponential long tail, imbalance {imbalance:g} (n_c = floor(6000 * {imbalance:g}^(-c/9)), "
        "seed 0); balanced validation 1,000 / test 9,000 from the official test set"
    )
    return _build("fashion-mnist-lt", keep, split, {"imbalance": imbalance})


_COMMON = dict(
    source="Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1 (/usr/share/datasets/fashion-mnist)",
    licence="MIT (Expat), Zalando SE",
    citation=(
        "H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
        "Machine Learning Algorithms. arXiv:1708.07747, 2017"
    ),
    available=_available,
    obtain=(
        "apt-get update && apt-get install -y dataset-fashion-mnist",
        "or, without root: apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb "
        '"${LOGITKIT_DATA:-$HOME/.cache/logitkit}/debian"',
    ),
)

register(
    DatasetInfo(
        name="fashion-mnist",
        task="multiclass",
        title="Fashion-MNIST, 10 balanced classes",
        split="official 60,000 train; official test -> 1,000 validation + 9,000 test (balanced, seed 0)",
        shape="70,000 x 784 (28x28), 10 classes",
        loader=load_fashion_mnist,
        **_COMMON,
    )
)
register(
    DatasetInfo(
        name="fashion-mnist-lt",
        task="multiclass",
        title="Fashion-MNIST-LT: exponential long tail (imbalance 100 by default)",
        split="train 6,000 ... 60 per class (14,886) at imbalance 100; balanced 1,000 val / 9,000 test",
        shape="14,886 train at imbalance 100, 784 features, 10 classes",
        loader=load_fashion_mnist_lt,
        params={"imbalance": 100.0},
        **_COMMON,
    )
)
