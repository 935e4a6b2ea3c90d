"""Benchmark cases, timing and memory measurement.

A *case* times the forward (+ backward) pass of one logitkit function against a named peer on the
same inputs, in the same process, and reports the ratio. With ``backward=False`` any call can be
timed (e.g. an estimator's ``fit``); ``extra`` adds quality metrics measured once (e.g. test
accuracy of both sides) to the result row. Peak memory is measured in a fresh
subprocess per (case, side): the resident-set high-water mark is reset (``/proc/self/clear_refs``)
after the inputs exist and a warm-up step ran, then read back after one more step. The default
allocator (glibc malloc) is used for both sides, as users get it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils import benchmark

SUITES: dict[str, Callable[[], Iterable[Case]]] = {}


@dataclasses.dataclass
class Case:
    """One comparison. ``setup(device)`` returns the keyword inputs of both functions."""

    suite: str
    name: str
    setup: Callable[[str], dict[str, Any]]
    ours: tuple[str, Callable[..., Any]]
    peer: tuple[str, Callable[..., Any]] | None
    backward: bool = True
    notes: str = ""
    input_bytes: Callable[[dict[str, Any]], int] | None = None
    extra: Callable[[], dict[str, Any]] | None = None


def register(suite: str) -> Callable[[Callable[[], Iterable[Case]]], Callable[[], Iterable[Case]]]:
    """Register a function yielding the :class:`Case` objects of ``suite``."""

    def wrap(fn: Callable[[], Iterable[Case]]) -> Callable[[], Iterable[Case]]:
        SUITES[suite] = fn
        return fn

    return wrap


def load_suites() -> None:
    """Import every ``benchmarks/bench_*.py`` so that they register themselves."""
    here = os.path.dirname(__file__)
    for name in sorted(os.listdir(here)):
        if name.startswith("bench_") and name.endswith(".py"):
            importlib.import_module(f"benchmarks.{name[:-3]}")


def find_case(suite: str, name: str) -> Case:
    load_suites()
    for case in SUITES[suite]():
        if case.name == name:
            return case
    raise KeyError(f"no case {name!r} in suite {suite!r}")


def _step(fn: Callable[..., Any], inputs: dict[str, Any], backward: bool) -> None:
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            value.grad = None
    out = fn(**inputs)
    if backward:
        (out if out.dim() == 0 else out.sum()).backward()


def time_case(case: Case, device: str, min_run_time: float) -> dict[str, float]:
    """Median seconds of one step for ours and the peer, interleaved to share machine drift."""
    inputs = case.setup(device)
    sides = {"ours": case.ours[1]}
    if case.peer is not None:
        sides["peer"] = case.peer[1]
    for fn in sides.values():  # warm-up (lazy initialisation, allocator)
        _step(fn, inputs, case.backward)
    samples: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(3):
        for key, fn in sides.items():
            timer = benchmark.Timer(
                stmt="step(fn, inputs, backward)",
                globals={"step": _step, "fn": fn, "inputs": inputs, "backward": case.backward},
            )
            if device == "cuda":
                torch.cuda.synchronize()
            samples[key].append(timer.blocked_autorange(min_run_time=min_run_time / 3).median)
    return {key: sorted(values)[len(values) // 2] for key, values in samples.items()}


def _rss_kib() -> tuple[int, int]:
    with open("/proc/self/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    return rss, hwm


def measure_memory_here(case: Case, side: str, device: str) -> dict[str, int]:
    """Peak extra bytes of one step, measured in this (fresh) process."""
    inputs = case.setup(device)
    fn = case.ours[1] if side == "ours" else case.peer[1]
    _step(fn, inputs, case.backward)  # warm-up: lazy init must not count
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            value.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _step(fn, inputs, case.backward)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark
            f.write("5")
        before, _ = _rss_kib()
        _step(fn, inputs, case.backward)
        _, hwm = _rss_kib()
        peak = (hwm - before) * 1024
    size = case.input_bytes(inputs) if case.input_bytes else _tensor_bytes(inputs)
    return {"peak_bytes": peak, "input_bytes": size}


def _tensor_bytes(inputs: dict[str, Any]) -> int:
    """Bytes of the largest input tensor (the logits, in every suite so far)."""
    sizes = [v.numel() * v.element_size() for v in inputs.values() if isinstance(v, torch.Tensor)]
    return max(sizes) if sizes else 0


def measure_memory(case: Case, side: str, device: str) -> dict[str, int] | None:
    """Run :func:`measure_memory_here` in a fresh interpreter (allocations of one process
    would otherwise be recycled by the next measurement)."""
    cmd = [sys.executable, "-m", "benchmarks.memory", case.suite, case.name, side, device]
    # glibc's mmap threshold pinned at its 128 KiB default (instead of growing after the first free):
    # freed blocks then return to the OS, so the high-water mark measures live memory rather than
    # whatever the warm-up step left in the heap. Timings use the unmodified allocator.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "allocator": "glibc malloc (default)",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
