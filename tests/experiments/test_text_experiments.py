"""The text experiments (attention, droptoken): their model pieces and their --quick runs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from logitkit import data, experiments
from logitkit.data._paths import require_data
from logitkit.experiments import _chartext as ct
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results, run
from logitkit.models.masking import drop_tokens


def _need_austen() -> None:
    if not data.get("austen").available():
        message = f"dataset austen missing; obtain with: {data.get('austen').obtain[0]}"
        if require_data():
            pytest.fail(message)
        pytest.skip(message)


def test_rope_is_relative():
    # q_i . k_j after RoPE depends only on j - i: shifting every position leaves the scores unchanged.
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 5, 8, dtype=torch.float64), torch.randn(1, 2, 5, 8, dtype=torch.float64)
    pos = torch.arange(5)[None]
    scores = ct.rope(q, pos) @ ct.rope(k, pos).transpose(-1, -2)
    shifted = ct.rope(q, pos + 37) @ ct.rope(k, pos + 37).transpose(-1, -2)
    torch.testing.assert_close(scores, shifted)
    torch.testing.assert_close(ct.rope(q, pos).norm(dim=-1), q.norm(dim=-1))


def test_entropy_scale_equals_standard_at_the_base_length():
    torch.manual_seed(0)
    standard = ct.CharEncoder(10, dim=16, layers=1, heads=2, ffn=32, scale="standard")
    entropy = ct.CharEncoder(10, dim=16, layers=1, heads=2, ffn=32, scale="entropy", base_length=12)
    entropy.load_state_dict(standard.state_dict())
    ids = torch.randint(0, 10, (3, 12))
    torch.testing.assert_close(entropy(ids), standard(ids))  # n = b
    assert not torch.allclose(entropy(ids[:, :6]), standard(ids[:, :6]))  # n < b: flatter
    with pytest.raises(ValueError, match="scale: expected 'standard' or 'entropy'"):
        ct.CharEncoder(10, scale="log")


def test_mlm_corruption_rates_and_vocab():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50, (200, 500))
    corrupted, chosen = ct.mlm_corrupt(ids, 50, 0.15, g)
    assert abs(chosen.double().mean().item() - 0.15) < 0.005
    masked = (corrupted == ct.MASK) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.01
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    vocab = ct.CharVocab("aab" * 20 + "z", min_count=20)
    assert vocab.itos == ["<pad>", "<mask>", "<unk>", "a", "b"]
    assert vocab.encode("abz").tolist() == [3, 4, ct.UNK]


def test_analytic_entropy_check():
    out = ct.entropy_vs_length([64, 512], 32, base_length=512, samples=50)
    assert out["standard"][1] == pytest.approx(out["entropy"][1])  # equal scales at n = 512
    assert out["entropy"][0] > out["standard"][0]  # flatter scale below the base
    assert all(h < math.log(n) for h, n in zip(out["standard"], [64, 512], strict=True))


def test_dropped_batch_keeps_positions():
    # With rate 0 the compacted batch is the batch itself; the classifier sees the same thing.
    from logitkit.experiments.droptoken import _Classifier

    torch.manual_seed(0)
    model = _Classifier(20, 3).eval()
    ids = torch.randint(3, 20, (4, 16))
    kept = drop_tokens(ids, None, 0.0)
    torch.testing.assert_close(model(kept.input_ids, kept.position_ids, kept.attention_mask), model(ids))
    dropped = drop_tokens(ids, None, 0.5, generator=torch.Generator().manual_seed(1))
    assert dropped.input_ids.shape[1] < 16
    assert model(dropped.input_ids, dropped.position_ids, dropped.attention_mask).isfinite().all()


def test_attention_quick_run(tmp_path):
    _need_austen()
    exp = experiments.get("attention")
    out = run(exp, seeds=1, out=tmp_path / "att", progress=False, quick=True)
    records = read_results(out / "results.jsonl")
    assert {r["method"] for r in records} == {"standard", "entropy"}
    for r in records:
        accs = [r["metrics"][f"acc_{n}"] for n in (64, 128, 256, 512, 1024)]
        assert all(0.0 < a < 1.0 for a in accs)
        assert len(r["history"]["val"]) == 1 and len(r["history"]["test_nll"]) == 5
    markdown, _ = render(out)
    assert "acc@1024" in markdown and "E better than O by at least 5 points at n = 256" in markdown
    assert "entropy_invariant_attention" in markdown
    assert (out / "length.png").is_file()


def test_droptoken_quick_run(tmp_path):
    _need_austen()
    exp = experiments.get("droptoken")
    out = run(exp, seeds=1, out=tmp_path / "dt", progress=False, quick=True, methods=["rate-0", "rate-0.5"])
    records = read_results(out / "results.jsonl")
    assert {r["method"] for r in records} == {"rate-0", "rate-0.5"}
    for r in records:
        assert 0.0 < r["metrics"]["accuracy"] < 1.0 and len(r["per_class"]) == 6
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["sizes"] == [300, 400, 400]
    markdown, _ = render(out)
    assert "rate 0.5 less accurate than no dropping" in markdown and "drop_tokens" in markdown


def test_word_tokens_and_vocab():
    assert ct.words("Mr. Darcy's  house, 1811!") == ["mr", ".", "darcy's", "house", ",", "1811", "!"]
    vocab = ct.WordVocab(["a"] * 5 + ["b"] * 4 + ["c"] * 2, size=8000, min_count=3)
    assert vocab.itos == ["<pad>", "<mask>", "<unk>", "a", "b"]
    assert vocab.encode(["b", "c", "a"]).tolist() == [4, ct.UNK, 3]


def test_text_experiments_refuse_feature_datasets(tmp_path):
    with pytest.raises(
        ValueError, match="dataset: expected a text corpus \\(austen, pydoc-topics\\), got 'digits'"
    ):
        run(
            experiments.get("droptoken"),
            dataset="digits",
            seeds=1,
            out=tmp_path / "x",
            progress=False,
            quick=True,
        )
