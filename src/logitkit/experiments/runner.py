"""Run an experiment: every (method, seed) pair, each result appended to ``results.jsonl`` at once.

Two kinds of experiments share this loop: the built-in protocol (an MLP on standardised features,
multi-class or multi-label) and custom ones, whose ``Experiment.prepare`` loads their data once and
whose ``Experiment.trial`` trains and evaluates one (method, seed) pair with any model.

A run directory holds ``config.json`` (the experiment, dataset, split and training settings),
``results.jsonl`` (one JSON line per finished (method, seed) pair, written with a single ``write``,
``flush`` and ``fsync``), ``outputs/`` (each trained model's validation and test logits, written to a
temporary file and renamed, reused by post-hoc methods), and the report (``report.md`` + PNG plots).
Re-running the same command resumes: finished pairs are read back and skipped, so Ctrl-C loses only
the pair in progress. A results line is reused only under the same method signature
(hyper-parameters); ``config.json`` refuses a directory made with other data or training settings.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

import logitkit
from logitkit import data as lkdata
from logitkit.experiments import metrics as M
from logitkit.experiments._spec import Context, Experiment, Method, TrainConfig, TrialRun
from logitkit.experiments.train import init_distributed, train

__all__ = ["RunConflict", "append_result", "prepare_dataset", "read_results", "run"]

RESULTS, CONFIG, OUTPUTS = "results.jsonl", "config.json", "outputs"


class RunConflict(RuntimeError):
    """The run directory holds results of a different configuration."""


# ----------------------------------------------------------------------------- results file


def append_result(path: pathlib.Path, record: dict) -> None:
    """Append one JSON line durably: one ``write`` of the whole line, ``flush``, ``fsync``.

    A line cut short by a crash is skipped by :func:`read_results`; before appending, a missing final
    newline is restored so the new line never merges with a cut one.
    """
    line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
    path = pathlib.Path(path)
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode())
        handle.flush()
        os.fsync(handle.fileno())


def read_results(path: pathlib.Path) -> list[dict]:
    """Every complete record of a ``results.jsonl`` (unparsable or cut lines are skipped)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and {"method", "seed", "metrics"} <= set(record):
            records.append(record)
    return records


def _atomic_npz(path: pathlib.Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_json(path: pathlib.Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- data


def prepare_dataset(
    experiment: Experiment,
    dataset: str | None,
    *,
    dataset_params: dict | None = None,
    target: str | None = None,
    quick: bool = False,
) -> lkdata.Dataset:
    """Load a registry dataset or a CSV / ``.npz`` file; in quick mode cap the split sizes (seed 0)."""
    name = dataset or experiment.default_dataset
    if os.path.sep in name or name.endswith((".csv", ".npz", ".txt")):
        ds = lkdata.load_file(name, target=target)
    else:
        ds = lkdata.load(name, **(dataset_params or {}))
    if ds.task != experiment.task:
        raise ValueError(
            f"dataset: experiment {experiment.name!r} needs a {experiment.task} dataset, "
            f"got {ds.name!r} ({ds.task})"
        )
    if quick:
        rng = np.random.default_rng(0)
        changes = {}
        for part, cap in (("train", experiment.quick["max_train"]), ("val", experiment.quick["max_eval"]),
                          ("test", experiment.quick["max_eval"])):  # fmt: skip
            y = getattr(ds, f"y_{part}")
            if len(y) > cap:
                keep = np.sort(rng.permutation(len(y))[:cap])
                changes[f"x_{part}"] = getattr(ds, f"x_{part}")[keep]
                changes[f"y_{part}"] = y[keep]
        if changes:
            ds = replace(ds, split=ds.split + "; --quick: random subsets (seed 0)", **changes)
    return ds


def _standardise(ds: lkdata.Dataset, device: torch.device):
    mean = ds.x_train.mean(0, dtype=np.float64)
    std = ds.x_train.std(0, dtype=np.float64)
    std = np.where(std > 1e-8, std, 1.0)

    def tensor(x):
        return torch.as_tensor(((x - mean) / std).astype(np.float32), device=device)

    ydtype = torch.float32 if ds.task == "multilabel" else torch.long
    return (
        tensor(ds.x_train), torch.as_tensor(ds.y_train, dtype=ydtype, device=device),
        tensor(ds.x_val), tensor(ds.x_test),
    )  # fmt: skip


# ----------------------------------------------------------------------------- evaluation


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _softmax(x):
    z = x - x.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def val_scorer(ds: lkdata.Dataset) -> Callable[[np.ndarray], float]:
    """The per-epoch validation metric: macro mAP (multi-label) or balanced accuracy (multi-class)."""
    if ds.task == "multilabel":
        from sklearn.metrics import average_precision_score

        present = ds.y_val.sum(0) > 0
        return lambda logits: float(
            average_precision_score(ds.y_val[:, present], logits[:, present], average="macro")
        )
    present = np.unique(ds.y_val)

    def balanced_accuracy(logits):
        correct = logits.argmax(1) == ds.y_val
        return float(np.mean([correct[ds.y_val == c].mean() for c in present]))

    return balanced_accuracy


def evaluate(method: Method, ds: lkdata.Dataset, ctx: Context, logits_val, logits_test) -> tuple[dict, list]:
    """The method's metrics on the test split (and its per-class / per-label breakdown)."""
    if ds.task == "multilabel":
        thr = method.threshold
        out = M.multilabel_metrics(logits_test, ds.y_test, thr, _sigmoid(method.prob_scale * logits_test))
        tuned = M.tune_thresholds(logits_val, ds.y_val, thr)
        out.update(M.multilabel_metrics(logits_test, ds.y_test, tuned, prefix="tuned_"))
        return out, M.per_label_f1(logits_test, ds.y_test, thr)
    if method.posthoc is not None:
        probs = method.posthoc(
            ctx, torch.as_tensor(logits_test), torch.as_tensor(logits_val), torch.as_tensor(ds.y_val)
        )
        probs = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    else:
        probs = _softmax(logits_test.astype(np.float64))
    out = M.multiclass_metrics(probs, ds.y_test, ds.train_counts())
    return out, out.pop("per_class_accuracy")


# ----------------------------------------------------------------------------- the run


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _identity(experiment: Experiment, ds: lkdata.Dataset, train_config, quick: bool) -> dict:
    # Round-tripped through JSON so that it compares equal to the stored copy (tuples become lists).
    return json.loads(json.dumps(_identity_fields(experiment, ds, train_config, quick), default=str))


def _identity_fields(experiment: Experiment, ds: lkdata.Dataset, train_config, quick: bool) -> dict:
    return {
        "experiment": experiment.name,
        "dataset": ds.name,
        "dataset_params": ds.params,
        "split": ds.split,
        "sizes": list(ds.sizes()),
        "num_features": ds.num_features,
        "classes": list(ds.class_names),
        "train": train_config.asdict(),
        "quick": quick,
    }


def default_out(experiment: str, dataset: str, quick: bool) -> pathlib.Path:
    stem = pathlib.Path(dataset).stem if (os.path.sep in dataset or "." in dataset) else dataset
    return pathlib.Path("runs") / f"{experiment}-{stem}{'-quick' if quick else ''}"


@dataclass
class _Plan:
    """How one run computes its (method, seed) records: the built-in MLP or a custom trial."""

    dataset_name: str
    identity: dict
    dataset_config: dict
    train_config: TrainConfig
    one: Callable  # (method, seed, bar, out_dir) -> {"metrics", "per_class", "history", "best_epoch"}


def _builtin_plan(exp, dataset, *, quick, epochs, dataset_params, target, device, info) -> _Plan:
    """The built-in protocol: an MLP on standardised features (multi-class or multi-label)."""
    ds = prepare_dataset(exp, dataset, dataset_params=dataset_params, target=target, quick=quick)
    train_config = _epochs(exp.train_config(ds.name), exp, quick, epochs)
    x_train, y_train, x_val, x_test = _standardise(ds, device)
    ctx = Context(ds.task, ds.num_classes, ds.train_counts(), len(ds.y_train), device)
    scorer = val_scorer(ds)
    memory: dict[str, tuple[np.ndarray, np.ndarray, dict, int]] = {}

    def outputs_for(method: Method, seed: int, bar, outputs_dir: pathlib.Path):
        base = exp.method(method.train_as) if method.train_as else method
        fname = f"{base.name}-{_hash(base.signature())}-s{seed}.npz"
        if fname in memory:
            return memory[fname]
        if (outputs_dir / fname).is_file():
            with np.load(outputs_dir / fname) as z:
                got = (z["logits_val"], z["logits_test"], json.loads(str(z["history"])), int(z["best_epoch"]))
        else:

            def tick(epoch):
                if bar is not None:
                    bar.set_postfix_str(
                        f"{method.name} seed {seed} epoch {epoch + 1}/{train_config.epochs}", refresh=False
                    )
                    bar.update(0)  # redraws at most every mininterval

            trained = train(
                x_train, y_train, x_val, ds.num_classes, base.loss(ctx), train_config, seed,
                x_test=x_test, val_score=scorer, on_epoch=tick,
            )  # fmt: skip
            got = (trained.logits_val, trained.logits_test, trained.history, trained.best_epoch)
            if info.is_main:
                _atomic_npz(
                    outputs_dir / fname, logits_val=got[0], logits_test=got[1],
                    history=np.array(json.dumps(got[2])), best_epoch=np.array(got[3]),
                )  # fmt: skip
        memory[fname] = got
        return got

    def one(method: Method, seed: int, bar, out_dir: pathlib.Path) -> dict:
        logits_val, logits_test, history, best_epoch = outputs_for(method, seed, bar, out_dir / OUTPUTS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            metrics, per_class = evaluate(method, ds, ctx, logits_val, logits_test)
        return {"metrics": metrics, "per_class": per_class, "history": history, "best_epoch": best_epoch}

    dataset_config = {
        "name": ds.name,
        "describe": ds.describe(),
        "split": ds.split,
        "train_counts": ds.train_counts().tolist(),
    }
    return _Plan(ds.name, _identity(exp, ds, train_config, quick), dataset_config, train_config, one)


def _custom_plan(exp, dataset, *, quick, epochs, dataset_params, device, info) -> _Plan:
    """A custom experiment: ``exp.prepare`` once, then ``exp.trial`` per (method, seed)."""
    name = dataset or exp.default_dataset
    prepared = exp.prepare(name, quick=quick, device=device, params=dict(dataset_params or {}))
    train_config = _epochs(exp.train_config(prepared.name), exp, quick, epochs)
    identity = json.loads(
        json.dumps(
            {
                "experiment": exp.name,
                "dataset": prepared.name,
                "dataset_params": prepared.params,
                "split": prepared.split,
                "sizes": list(prepared.sizes),
                "classes": list(prepared.classes),
                "train": train_config.asdict(),
                "quick": quick,
            },
            default=str,
        )
    )

    def one(method: Method, seed: int, bar, out_dir: pathlib.Path) -> dict:
        def tick(message: str) -> None:
            if bar is not None:
                bar.set_postfix_str(f"{method.name} seed {seed} {message}", refresh=False)
                bar.update(0)

        (out_dir / OUTPUTS).mkdir(parents=True, exist_ok=True)
        trial_run = TrialRun(device, out_dir / OUTPUTS, quick, info.is_main, tick)
        result = exp.trial(method, seed, prepared, train_config, trial_run)
        return {
            "metrics": result.metrics,
            "per_class": list(result.per_class),
            "history": result.history,
            "best_epoch": result.best_epoch,
        }

    dataset_config = {
        "name": prepared.name,
        "describe": prepared.describe,
        "split": prepared.split,
        "train_counts": list(prepared.train_counts),
    }
    return _Plan(prepared.name, identity, dataset_config, train_config, one)


def _epochs(train_config: TrainConfig, exp: Experiment, quick: bool, epochs: int | None) -> TrainConfig:
    if quick:
        train_config = replace(train_config, epochs=exp.quick["epochs"])
    if epochs is not None:
        train_config = replace(train_config, epochs=int(epochs))
    return train_config


def run(
    experiment: Experiment | str,
    *,
    dataset: str | None = None,
    seeds: int = 5,
    epochs: int | None = None,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    dataset_params: dict | None = None,
    target: str | None = None,
    methods: list[str] | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> pathlib.Path:
    """Compute every (method, seed) pair not yet in ``out/results.jsonl``; return the run directory.

    ``seeds`` runs seeds ``0 .. seeds-1``. ``on_result(record)`` is called after each append (tests
    use it to simulate an interruption). Under ``torchrun`` every process trains, rank 0 writes.
    """
    from logitkit.experiments import get as get_experiment

    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    if threads is not None:
        torch.set_num_threads(int(threads))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device: expected an available CUDA device for --device cuda, got none")
    joined = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = init_distributed(device)
    joined = joined and info.world_size > 1  # this call created the process group
    if device.startswith("cuda") and info.world_size > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    torch_device = torch.device(device)

    if exp.trial is None:
        plan = _builtin_plan(
            exp, dataset, quick=quick, epochs=epochs, dataset_params=dataset_params, target=target,
            device=torch_device, info=info,
        )  # fmt: skip
    else:
        if target is not None:
            raise ValueError(f"target: experiment {exp.name!r} reads its own data; got target={target!r}")
        plan = _custom_plan(
            exp, dataset, quick=quick, epochs=epochs, dataset_params=dataset_params, device=torch_device,
            info=info,
        )  # fmt: skip
    selected = list(exp.methods)
    if methods:
        unknown = [m for m in methods if m not in {x.name for x in exp.methods}]
        if unknown:
            raise KeyError(f"methods: expected names from {[m.name for m in exp.methods]}, got {unknown}")
        selected = [m for m in exp.methods if m.name in methods]

    out_dir = (
        pathlib.Path(out) if out is not None else default_out(exp.name, dataset or exp.default_dataset, quick)
    )
    identity = plan.identity
    config_path = out_dir / CONFIG
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if config_path.is_file():
            stored = json.loads(config_path.read_text())
            if stored.get("identity") != identity:
                diff = sorted(k for k in identity if stored.get("identity", {}).get(k) != identity[k])
                raise RunConflict(
                    f"{out_dir} holds a run with different settings ({', '.join(diff)}); "
                    "use another --out, or delete the directory to start over"
                )
    config = {
        "identity": identity,
        "experiment": exp.spec(),
        "dataset": plan.dataset_config,
        "run": {
            "logitkit": logitkit.__version__,
            "torch": torch.__version__,
            "device": device,
            "threads": torch.get_num_threads(),
            "world_size": info.world_size,
            "seeds": list(range(seeds)),
            "methods": [m.name for m in selected],
        },
    }
    results_path = out_dir / RESULTS
    if info.is_main:
        _atomic_json(config_path, config)
    finished = {(r["method"], r.get("signature"), r["seed"]) for r in read_results(results_path)}
    if info.world_size > 1:
        torch.distributed.barrier()
    pending = [(m, s) for s in range(seeds) for m in selected if (m.name, m.signature(), s) not in finished]

    bar = None
    if progress and info.is_main and pending:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(pending), desc=f"{exp.name}/{plan.dataset_name}", unit="run", dynamic_ncols=True,
            mininterval=0.5,
        )  # fmt: skip
    try:
        for method, seed in pending:
            if bar is not None:
                bar.set_postfix_str(f"{method.name} seed {seed}", refresh=False)
            started = time.perf_counter()
            outcome = plan.one(method, seed, bar, out_dir)
            record = {
                "method": method.name,
                "signature": method.signature(),
                "seed": seed,
                **outcome,
                "seconds": round(time.perf_counter() - started, 3),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "logitkit": logitkit.__version__,
            }
            if info.is_main:
                append_result(results_path, record)
            if info.world_size > 1:
                torch.distributed.barrier()
            if bar is not None:
                bar.update(1)
            if on_result is not None:
                on_result(record)
    finally:
        if bar is not None:
            bar.close()
        if joined:
            torch.distributed.destroy_process_group()
    return out_dir
