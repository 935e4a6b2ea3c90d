"""The registry itself: embedded data, the long-tail builder, user data, missing-data messages."""

from __future__ import annotations

import numpy as np
import pytest

from logitkit import data
from logitkit.data._registry import DatasetInfo


def test_every_entry_documents_provenance():
    for info, _ in data.status():
        assert info.source and info.licence and info.citation and info.split and info.shape, info.name
        assert info.obtain and all(info.obtain), info.name
        assert info.task in ("multiclass", "multilabel", "pairs", "text")


def test_embedded_digits_split_is_fixed_and_balanced():
    a, b = data.load("digits"), data.load("digits")
    assert a.sizes() == (1097, 200, 500)
    assert np.bincount(a.y_test).tolist() == [50] * 10 and np.bincount(a.y_val).tolist() == [20] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert sum(a.sizes()) == 1797


def test_digits_lt_profile():
    ds = data.load("digits-lt")
    assert ds.train_counts().tolist() == data.longtail_counts(104, 10, 100).tolist()
    assert data.load("digits-lt", imbalance=10).train_counts().tolist() == [
        104,
        80,
        62,
        48,
        37,
        28,
        22,
        17,
        13,
        10,
    ]
    # The long-tailed training set is a subset of the balanced training pool.
    pool = {row.tobytes() for row in data.load("digits").x_train}
    assert all(row.tobytes() in pool for row in ds.x_train)


@pytest.mark.parametrize(("ratio", "total"), [(100, 14886), (50, 16796), (10, 24516)])
def test_longtail_counts_published_totals(ratio, total):
    counts = data.longtail_counts(6000, 10, ratio)
    assert counts.sum() == total and counts[0] == 6000 and counts[-1] == 6000 // ratio
    assert np.all(np.diff(counts) <= 0)


def test_longtail_indices_keep_first_of_seeded_shuffle():
    labels = np.repeat(np.arange(3), 10)
    idx = data.longtail_indices(labels, 4, seed=1)
    assert np.bincount(labels[idx]).tolist() == [10, 5, 2]
    np.testing.assert_array_equal(idx, data.longtail_indices(labels, 4, seed=1))
    with pytest.raises(ValueError, match="imbalance: expected a ratio >= 1"):
        data.longtail_counts(10, 3, 0.5)
    with pytest.raises(ValueError, match="n_max: expected at most the smallest class size 10"):
        data.longtail_indices(labels, 4, n_max=11)


def test_missing_dataset_names_the_obtain_command():
    info = DatasetInfo(
        name="nowhere",
        task="multiclass",
        title="t",
        source="a package",
        licence="l",
        citation="c",
        split="s",
        shape="0",
        loader=lambda: None,
        available=lambda: False,
        obtain=("apt-get install -y nothing",),
    )
    with pytest.raises(data.DatasetMissing, match="apt-get install -y nothing"):
        info.load()
    with pytest.raises(KeyError, match="dataset: expected one of"):
        data.load("no-such-dataset")
    with pytest.raises(TypeError, match="unknown parameter"):
        data.load("digits", imbalance=3)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOGITKIT_DATA", str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LOGITKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "logitkit"


def test_csv_multiclass_and_multilabel(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    path = tmp_path / "mine.csv"
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{'cat' if r[0] > 0 else 'dog'}" for r in x]
    path.write_text("\n".join(lines))
    ds = data.from_csv(path)
    assert ds.task == "multiclass" and ds.class_names == ("cat", "dog") and sum(ds.sizes()) == 50
    assert ds.sizes() == (32, 8, 10)  # test 20%, then validation 20% of the rest, stratified
    multi = tmp_path / "multi.csv"
    rows = ["f1,f2,label_x,label_y"] + [f"{i},{-i},{i % 2},{int(i % 3 == 0)}" for i in range(40)]
    multi.write_text("\n".join(rows))
    ds = data.from_csv(multi)
    assert ds.task == "multilabel" and ds.class_names == ("label_x", "label_y") and ds.num_features == 2
    with pytest.raises(ValueError, match="target: expected column names"):
        data.from_csv(multi, target="nope")


def test_npz_with_and_without_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "plain.npz", x=rng.normal(size=(40, 4)), y=np.arange(40) % 4)
    ds = data.load_file(tmp_path / "plain.npz")
    assert ds.name == "plain" and ds.num_classes == 4 and sum(ds.sizes()) == 40
    np.savez(
        tmp_path / "split.npz",
        x_train=rng.normal(size=(30, 2)),
        y_train=np.arange(30) % 3,
        x_test=rng.normal(size=(9, 2)),
        y_test=np.arange(9) % 3,
    )
    ds = data.from_npz(tmp_path / "split.npz")
    assert ds.sizes()[2] == 9 and sum(ds.sizes()[:2]) == 30
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="expected arrays x, y"):
        data.from_npz(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=r"expected a \.csv or \.npz file"):
        data.load_file(tmp_path / "x.json")
