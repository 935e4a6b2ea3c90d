"""The mlbench tabular sets (Debian ``r-cran-mlbench`` 2.1-3; UCI / Statlog data), read without R.

Files ``/usr/lib/R/site-library/mlbench/data/<Name>.rda``. Features: numeric columns as floats,
factor columns as their integer codes (a missing value is its own code, -1; missing numbers become
the column median). No official splits: a fixed stratified split (seed 0) of 70% train, 15%
validation, 15% test.
"""

from __future__ import annotations

import numpy as np

from logitkit.data._paths import cached_arrays, debian_file
from logitkit.data._rdata import read_rda
from logitkit.data._registry import DatasetInfo, make_dataset, register, stratified_split

ROOT = "usr/lib/R/site-library/mlbench/data/"
SPLIT_SEED = 0

# name -> (R object, target column, published shape, title)
SETS = {
    "shuttle": ("Shuttle", "Class", "58,000 x 9, 7 classes, natural long tail (45,586 ... 10, IR 4,559)"),
    "letter": ("LetterRecognition", "lettr", "20,000 x 16, 26 classes (734 ... 813)"),
    "satellite": ("Satellite", "classes", "6,435 x 36, 6 classes (1,533 ... 626)"),
    "dna": ("DNA", "Class", "3,186 x 180, 3 classes (1,654 / 767 / 765)"),
    "soybean": ("Soybean", "Class", "683 x 35, 19 classes (92 ... 8)"),
    "vowel": ("Vowel", "Class", "990 x 10, 11 classes (90 each)"),
    "vehicle": ("Vehicle", "Class", "846 x 18, 4 classes"),
    "glass": ("Glass", "Type", "214 x 9, 6 classes (76 ... 9)"),
    "zoo": ("Zoo", "type", "101 x 16, 7 classes"),
}


def _path(obj: str):
    return debian_file(ROOT + f"{obj}.rda")


def _arrays(obj: str, target: str) -> dict[str, np.ndarray]:
    import pandas as pd

    frame = read_rda(_path(obj))[obj]
    labels = frame[target]
    codes = labels.cat.codes.to_numpy().astype(np.int64)
    names = np.array([str(c) for c in labels.cat.categories])
    columns = []
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            columns.append(col.cat.codes.to_numpy().astype(np.float64))
        else:
            values = pd.to_numeric(col, errors="coerce").astype(float).to_numpy()
            if np.isnan(values).any():
                values = np.where(np.isnan(values), np.nanmedian(values), values)
            columns.append(values)
    return {"x": np.stack(columns, axis=1), "y": codes, "classes": names}


def _loader(name: str):
    obj, target, _ = SETS[name]

    def load():
        a = cached_arrays(f"mlbench-2.1-3-{obj}", lambda: _arrays(obj, target))
        train, val, test = stratified_split(a["y"], [0.7, 0.15], SPLIT_SEED)
        split = "fixed stratified split (seed 0): 70% train / 15% validation / 15% test"
        return make_dataset(name, "multiclass", a["x"], a["y"], (train, val, test), a["classes"], split)

    return load


def _available(obj: str):
    return lambda: _path(obj) is not None


for _name, (_obj, _target, _shape) in SETS.items():
    register(
        DatasetInfo(
            name=_name,
            task="multiclass",
            title=f"mlbench {_obj}",
            source=f"Debian r-cran-mlbench 2.1-3-1 (mlbench/data/{_obj}.rda)",
            licence="GPL-2 (mlbench package); UCI / Statlog data",
            citation=(
                "F. Leisch, E. Dimitriadou. mlbench: Machine Learning Benchmark Problems. R package; "
                "D. Dua, C. Graff. UCI Machine Learning Repository"
            ),
            split="stratified 70 / 15 / 15 (seed 0)",
            shape=_shape,
            loader=_loader(_name),
            available=_available(_obj),
            obtain=(
                "apt-get update && apt-get install -y r-cran-mlbench",
                "or, without R: apt-get download r-cran-mlbench && dpkg-deb -x r-cran-mlbench_*.deb "
                '"${LOGITKIT_DATA:-$HOME/.cache/logitkit}/debian"',
            ),
        )
    )
