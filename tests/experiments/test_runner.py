"""The runner: determinism, atomic results, resume after a finished or an interrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import logitkit.experiments.runner as runner
from logitkit import experiments
from logitkit.experiments.report import render


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = runner.train

    def counted(*args, **kwargs):
        calls.append(args[6])  # the seed
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train", counted)
    return calls


def lines(run_dir):
    return runner.read_results(run_dir / runner.RESULTS)


def test_quick_multilabel_run_and_report(tmp_path):
    out = experiments.run("multilabel", threads=1, quick=True, seeds=2, out=tmp_path / "r", progress=False)
    records = lines(out)
    assert sorted((r["method"], r["seed"]) for r in records) == sorted(
        (m, s)
        for m in ("bce", "bce_pos_weight", "asl", "sigmoid_focal", "sigmoid_focal_a25", "zlpr", "soft_zlpr")
        for s in (0, 1)
    )
    for r in records:
        assert 0 < r["metrics"]["micro_f1"] <= 1 and 0 <= r["metrics"]["hamming"] <= 1
        assert len(r["per_class"]) == 14 and len(r["history"]["val"]) >= 1
    markdown, console = render(out)
    assert "| bce | 2 |" in markdown and "| zlpr | 2 |" in markdown
    assert (
        "**Verdict: HOLDS on this run.**" in markdown or "**Verdict: DOES NOT HOLD on this run.**" in markdown
    )
    assert (
        (out / "report.md").is_file()
        and (out / "metrics.png").is_file()
        and (out / "per_label.png").is_file()
    )
    assert "micro-F1" in console


def test_deterministic_for_a_fixed_seed(tmp_path):
    kwargs = dict(threads=1, quick=True, seeds=1, progress=False, methods=["ce"])
    a = lines(experiments.run("longtail", out=tmp_path / "a", **kwargs))
    b = lines(experiments.run("longtail", out=tmp_path / "b", **kwargs))
    assert a[0]["metrics"] == b[0]["metrics"] and a[0]["history"] == b[0]["history"]
    za = np.load(next((tmp_path / "a" / "outputs").glob("*.npz")))
    zb = np.load(next((tmp_path / "b" / "outputs").glob("*.npz")))
    np.testing.assert_array_equal(za["logits_test"], zb["logits_test"])


def test_resume_skips_finished_pairs(tmp_path, count_training):
    out = tmp_path / "r"
    kwargs = dict(threads=1, quick=True, out=out, progress=False, methods=["ce", "ce_posthoc_la"])
    experiments.run("longtail", seeds=2, **kwargs)
    assert count_training == [0, 1]  # the post-hoc method reuses the CE models
    experiments.run("longtail", seeds=3, **kwargs)
    assert count_training == [0, 1, 2]  # only the new seed trained
    experiments.run("longtail", seeds=3, **kwargs)
    assert count_training == [0, 1, 2]
    assert sorted(r["seed"] for r in lines(out)) == [0, 0, 1, 1, 2, 2]


def test_interrupted_run_keeps_finished_results_and_resumes(tmp_path, count_training):
    out = tmp_path / "r"
    seen = []

    def interrupt_after_two(record):
        seen.append((record["method"], record["seed"]))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        experiments.run(
            "multilabel",
            threads=1,
            quick=True,
            seeds=2,
            out=out,
            progress=False,
            on_result=interrupt_after_two,
        )
    assert [(r["method"], r["seed"]) for r in lines(out)] == seen
    trained_before = len(count_training)
    experiments.run("multilabel", threads=1, quick=True, seeds=2, out=out, progress=False)
    total = 2 * len(experiments.get("multilabel").methods)
    assert len(count_training) - trained_before == total - 2
    keys = [(r["method"], r["seed"]) for r in lines(out)]
    assert len(keys) == len(set(keys)) == total


def test_ctrl_c_in_a_real_process_then_resume(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "logitkit", "run", "longtail", "--quick", "--seeds", "12", "--epochs", "40",
           "--out", str(out), "--no-progress", "--methods", "ce"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = out / runner.RESULTS
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not results.is_file() or len(lines(out)) < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = lines(out)
    if proc.returncode == 0:  # finished before the signal arrived: nothing to check about interruption
        pytest.skip("the run finished before SIGINT")
    assert proc.returncode == 130 and b"re-run the same command to resume" in err
    assert 2 <= len(done) < 12
    finished = subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=300)
    seeds = [r["seed"] for r in lines(out)]
    assert sorted(seeds) == list(range(12))  # every pair exactly once: nothing repeated, nothing lost
    assert b"balanced error" in finished.stdout


def test_append_survives_a_cut_line(tmp_path):
    path = tmp_path / runner.RESULTS
    runner.append_result(path, {"method": "a", "seed": 0, "metrics": {}})
    with open(path, "a") as handle:
        handle.write('{"method": "b", "seed"')  # a crash in the middle of a write
    runner.append_result(path, {"method": "c", "seed": 1, "metrics": {}})
    assert [r["method"] for r in runner.read_results(path)] == ["a", "c"]
    assert path.read_text().count("\n") == 3


def test_other_settings_refuse_the_run_directory(tmp_path):
    out = tmp_path / "r"
    experiments.run("longtail", threads=1, quick=True, seeds=1, out=out, progress=False)
    with pytest.raises(runner.RunConflict, match="different settings \\(train\\)"):
        experiments.run("longtail", threads=1, quick=True, seeds=1, epochs=2, out=out, progress=False)
    config = json.loads((out / runner.CONFIG).read_text())
    assert config["identity"]["dataset"] == "digits-lt" and config["run"]["seeds"] == [0]


def test_changed_hyper_parameters_are_not_reused(tmp_path, count_training):
    out = tmp_path / "r"
    experiments.run("longtail", threads=1, quick=True, seeds=1, out=out, progress=False, methods=["ce"])
    exp = experiments.get("longtail")
    import dataclasses

    changed = dataclasses.replace(exp, methods=[dataclasses.replace(exp.methods[0], params={"variant": 2})])
    experiments.run(changed, threads=1, quick=True, seeds=1, out=out, progress=False, methods=["ce"])
    assert count_training == [0, 0]


def test_task_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs a multilabel dataset, got 'digits-lt'"):
        experiments.run("multilabel", dataset="digits-lt", quick=True, seeds=1, out=tmp_path, progress=False)


def test_every_longtail_method_runs_and_post_hoc_methods_reuse_the_ce_models(tmp_path, count_training):
    out = experiments.run("longtail", threads=1, quick=True, seeds=1, out=tmp_path / "r", progress=False)
    records = {r["method"]: r for r in lines(out)}
    assert set(records) == {
        "ce",
        "ce_posthoc_la",
        "la_loss",
        "focal",
        "truncated",
        "class_balanced",
        "ce_can",
    }
    assert len(count_training) == 5  # ce_posthoc_la and ce_can train nothing
    for r in records.values():
        assert 0 <= r["metrics"]["balanced_error"] <= 1 and np.isfinite(r["metrics"]["ece"])
    # post-hoc adjustment changes the decisions of the same CE model
    assert records["ce_posthoc_la"]["metrics"]["balanced_error"] != records["ce"]["metrics"]["balanced_error"]
    markdown, _ = render(out)
    assert "| la_loss | 1 |" in markdown and "| ce_can | 1 |" in markdown
