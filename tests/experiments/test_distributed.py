"""torchrun with 2 gloo processes gives the single-process result at the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch.distributed as dist


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_gloo_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        "-m",
        "logitkit",
        "run",
        "longtail",
        "--quick",
        "--seeds",
        "1",
        "--no-progress",
        "--methods",
        "ce",
    ]
    one = tmp_path / "one"
    subprocess.run(
        [sys.executable, *args, "--out", str(one)], env=env, check=True, capture_output=True, timeout=300
    )
    two = tmp_path / "two"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run([*launch, *args, "--out", str(two)], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    a = np.load(next((one / "outputs").glob("*.npz")))
    b = np.load(next((two / "outputs").glob("*.npz")))
    np.testing.assert_allclose(a["logits_test"], b["logits_test"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a["logits_val"], b["logits_val"], rtol=1e-4, atol=1e-4)
    config = (two / "config.json").read_text()
    assert '"world_size": 2' in config
    assert (two / "results.jsonl").read_text().count("\n") == 1  # rank 0 writes, once
