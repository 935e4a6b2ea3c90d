"""Registry datasets against their published sizes and label statistics (data.md).

A dataset whose package is not on this machine is skipped locally and fails in CI, where .ci/run
provisions it and sets LOGITKIT_REQUIRE_DATA=1.
"""

from __future__ import annotations

import numpy as np
import pytest

from logitkit import data
from logitkit.data._paths import require_data


def need(name: str, **params) -> data.Dataset:
    info = data.get(name)
    if not info.available():
        message = f"dataset {name} missing; obtain with: {info.obtain[0]}"
        if require_data():
            pytest.fail(message)
        pytest.skip(message)
    return info.load(**params)


def total_counts(ds: data.Dataset) -> np.ndarray:
    if ds.task == "multilabel":
        return np.concatenate([ds.y_train, ds.y_val, ds.y_test]).sum(0).astype(int)
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    return np.bincount(y, minlength=ds.num_classes)


def test_yeast_matches_mulan():
    ds = need("yeast")
    assert ds.sizes() == (1200, 300, 917) and ds.num_features == 103 and ds.num_classes == 14
    counts = [762, 1038, 983, 862, 722, 597, 428, 480, 178, 253, 289, 1816, 1799, 34]
    assert total_counts(ds).tolist() == counts
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert round(float(y.sum(1).mean()), 2) == 4.24  # label cardinality


def test_scene_standard_split():
    ds = need("scene")
    assert ds.sizes() == (969, 242, 1196) and ds.num_features == 294 and ds.num_classes == 6
    assert total_counts(ds).tolist() == [427, 364, 397, 433, 533, 431]
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert round(float(y.sum(1).mean()), 2) == 1.07
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0


def test_movielens_genres():
    ds = need("movielens")
    assert sum(ds.sizes()) == 9066 and ds.num_classes == 19 and ds.num_features == 64
    published = [
        4328,
        3307,
        1717,
        1543,
        1541,
        1116,
        1092,
        872,
        791,
        653,
        582,
        537,
        487,
        447,
        394,
        366,
        168,
        153,
        121,
    ]
    assert total_counts(ds).tolist() == published
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert int((y.sum(1) == 0).sum()) == 17  # "(no genres listed)"
    assert round(float(y.sum(1).mean()), 2) == 2.23


def test_fashion_mnist_and_its_long_tail():
    ds = need("fashion-mnist")
    assert ds.sizes() == (60000, 1000, 9000) and ds.num_features == 784
    assert ds.train_counts().tolist() == [6000] * 10
    assert np.bincount(ds.y_val).tolist() == [100] * 10 and np.bincount(ds.y_test).tolist() == [900] * 10
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() == 1.0
    for ratio, total in ((100, 14886), (50, 16796), (10, 24516)):
        lt = need("fashion-mnist-lt", imbalance=ratio)
        assert len(lt.y_train) == total
        assert lt.train_counts()[0] == 6000 and lt.train_counts()[-1] == 6000 // ratio
        assert lt.sizes()[1:] == (1000, 9000)


@pytest.mark.parametrize(
    ("name", "rows", "features", "counts"),
    [
        ("shuttle", 58000, 9, [45586, 50, 171, 8903, 3267, 10, 13]),
        ("letter", 20000, 16, None),
        ("satellite", 6435, 36, None),
        ("dna", 3186, 180, None),
        ("soybean", 683, 35, None),
        ("vowel", 990, 10, [90] * 11),
        ("glass", 214, 9, None),
    ],
)
def test_mlbench_tables(name, rows, features, counts):
    ds = need(name)
    assert sum(ds.sizes()) == rows and ds.num_features == features
    total = total_counts(ds)
    if counts is not None:
        assert total.tolist() == counts
    if name == "letter":
        assert ds.num_classes == 26 and total.min() == 734 and total.max() == 813
    if name == "satellite":
        assert ds.num_classes == 6 and total.max() == 1533 and total.min() == 626
    if name == "dna":
        assert sorted(total.tolist()) == [765, 767, 1654]
    if name == "soybean":
        assert ds.num_classes == 19 and total.max() == 92 and total.min() == 8
    if name == "glass":
        assert sorted(total.tolist(), reverse=True)[0] == 76 and total.min() == 9


def test_austen_chapters_and_split():
    corpus = need("austen")
    # The six novels' chapter counts (Emma 55, Mansfield Park 48, Northanger Abbey 31, Persuasion
    # 24, Pride and Prejudice 61, Sense and Sensibility 50), split by whole chapters per novel.
    totals = (
        corpus.train_counts()
        + np.bincount(corpus.y_val, minlength=6)
        + np.bincount(corpus.y_test, minlength=6)
    )
    assert totals.tolist() == [55, 48, 31, 24, 61, 50]
    assert corpus.sizes() == (215, 27, 27) and corpus.num_classes == 6
    assert np.bincount(corpus.y_test, minlength=6).tolist() == [6, 5, 3, 2, 6, 5]
    assert 3.9e6 < sum(corpus.chars()) < 4.1e6  # data.md: about 4.0M characters
    assert corpus.train[0].startswith("Emma Woodhouse, handsome, clever, and rich")
    assert not any("CHAPTER" in doc[:20] or "Chapter" in doc[:20] for doc in corpus.train)
    again = data.load("austen")
    assert again.test == corpus.test  # the fixed split


def test_pydoc_topics_is_every_topic_once_with_a_fixed_split():
    from pydoc_data import topics

    corpus = data.load("pydoc-topics")
    n = len(topics.topics)
    assert sum(corpus.sizes()) == n and corpus.sizes()[2] == n // 10  # every 10th topic held out
    assert sorted(corpus.train + corpus.val + corpus.test) == sorted(topics.topics.values())
    assert corpus.num_classes == 1 and corpus.train_counts().tolist() == [len(corpus.train)]
    assert 3e5 < sum(corpus.chars()) < 1e6  # about 0.5M characters
    assert data.load("pydoc-topics").test == corpus.test  # the fixed split
