"""What an experiment is: a dataset, a model, methods with hyper-parameters, metrics, a claim."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

__all__ = [
    "Check",
    "Claim",
    "Context",
    "Experiment",
    "Method",
    "MetricInfo",
    "Pending",
    "Prepared",
    "TrainConfig",
    "TrialResult",
    "TrialRun",
    "define_metric",
    "metric_info",
]


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is shown and compared: its label, its direction, and whether it is a fraction
    shown in percent (otherwise its raw value is shown, e.g. a log-likelihood in nats)."""

    label: str
    lower_is_better: bool = False
    percent: bool = True


METRICS: dict[str, MetricInfo] = {}


def define_metric(name: str, label: str, *, lower_is_better: bool = False, percent: bool = True) -> None:
    """Register how metric ``name`` is labelled, oriented and scaled in reports."""
    METRICS[name] = MetricInfo(label, lower_is_better, percent)


for _name, _label, _lower, _percent in (
    ("micro_f1", "micro-F1", False, True), ("macro_f1", "macro-F1", False, True),
    ("hamming", "Hamming", True, True), ("map", "mAP", False, True),
    ("lrap", "avg. precision", False, True), ("ranking_loss", "ranking loss", True, True),
    ("one_error", "one-error", True, True), ("coverage", "coverage", True, False),
    ("ece", "ECE", True, True), ("balanced_error", "balanced error", True, True),
    ("accuracy", "accuracy", False, True), ("many_accuracy", "many acc.", False, True),
    ("medium_accuracy", "medium acc.", False, True), ("few_accuracy", "few acc.", False, True),
):  # fmt: skip
    define_metric(_name, _label, lower_is_better=_lower, percent=_percent)


def metric_info(metric: str, spec: dict | None = None) -> MetricInfo:
    """A metric's :class:`MetricInfo`: as stored in a run's spec, else registered, else defaults.

    ``tuned_<metric>`` (after threshold tuning) inherits from ``<metric>``.
    """
    stored = (spec or {}).get("metric_info", {}).get(metric)
    if stored is not None:
        return MetricInfo(**stored)
    if metric in METRICS:
        return METRICS[metric]
    base = metric.removeprefix("tuned_")
    if base != metric and base in METRICS:
        info = METRICS[base]
        return replace(info, label="tuned " + info.label)
    return MetricInfo(metric)


@dataclass(frozen=True)
class Context:
    """What a method may know about the training data when it builds its loss."""

    task: str
    num_classes: int
    train_counts: np.ndarray  # examples per class (multi-class) or positives per label (multi-label)
    n_train: int
    device: torch.device | str = "cpu"

    @property
    def prior(self) -> torch.Tensor:
        """Training-label frequencies :math:`p(y)` (multi-class)."""
        counts = torch.as_tensor(self.train_counts, dtype=torch.float32, device=self.device)
        return counts / counts.sum()

    @property
    def neg_pos_ratio(self) -> torch.Tensor:
        """Per-label negatives / positives in the training set (multi-label ``pos_weight``)."""
        pos = torch.as_tensor(self.train_counts, dtype=torch.float32, device=self.device).clamp_min(1)
        return (self.n_train - pos).clamp_min(1) / pos


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """One row of an experiment: how to train (``loss``) and how to read the trained model's output.

    ``loss(ctx)`` returns ``fn(logits, target) -> scalar``, averaged over the batch. A post-hoc method
    sets ``train_as`` to the method whose trained models it reuses (same seed) and ``posthoc(ctx,
    logits_test, logits_val, y_val) -> probabilities`` (multi-class). Multi-label methods predict a
    label when ``logit > threshold`` and read probabilities as ``sigmoid(prob_scale * logit)``.
    """

    name: str
    description: str
    loss: Callable[[Context], LossFn] | None = None
    params: dict = field(default_factory=dict)
    train_as: str | None = None
    posthoc: Callable | None = None
    threshold: float = 0.0
    prob_scale: float = 1.0

    def signature(self) -> str:
        """Identity for resuming: results recorded under another signature are not reused."""
        return json.dumps(
            {
                "params": self.params,
                "train_as": self.train_as,
                "threshold": self.threshold,
                "prob_scale": self.prob_scale,
            },
            sort_keys=True,
            default=str,
        )


@dataclass(frozen=True)
class Pending:
    """A method of the experiment's protocol whose logitkit function has not landed yet (not run)."""

    name: str
    needs: str  # the logitkit function(s) it waits for
    issue: int


@dataclass(frozen=True)
class Check:
    """``method`` is at least as good as (``strict``: better than) the best of ``versus`` on a metric.

    ``margin`` (in metric units) is the tolerance: the check holds when the mean paired difference,
    oriented so that positive means better, is ``>= -margin`` (``> margin`` when ``strict``).
    """

    text: str
    method: str
    metric: str
    versus: Sequence[str]
    versus_metric: str | None = None
    margin: float = 0.0
    strict: bool = False


@dataclass(frozen=True)
class Claim:
    text: str
    source: str
    checks: Sequence[Check]


@dataclass(frozen=True)
class Prepared:
    """What a custom experiment's ``prepare`` returns once per run: its data (any object) and the
    fields that identify it (a run directory refuses results made from other data)."""

    name: str
    describe: str
    split: str
    data: Any
    sizes: Sequence[int] = ()
    classes: Sequence[str] = ()  # per-class plots need classes and train_counts
    train_counts: Sequence[float] = ()
    params: dict = field(default_factory=dict)


@dataclass
class TrialResult:
    """One (method, seed) outcome of a custom experiment.

    ``history`` holds per-epoch curves (lists); ``history["val"]`` is drawn in ``training.png``.
    ``per_class`` (optional) is one value per class of :attr:`Prepared.classes`.
    """

    metrics: dict[str, float]
    per_class: list = field(default_factory=list)
    history: dict[str, list] = field(default_factory=dict)
    best_epoch: int = -1


@dataclass(frozen=True)
class TrialRun:
    """What a trial may use besides its method and seed: the device, a directory for caching
    trained models between methods and across resumed runs (write atomically), and progress."""

    device: torch.device
    cache_dir: pathlib.Path
    quick: bool
    is_main: bool
    tick: Callable[[str], None] = lambda message: None


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    select: str = "last"  # "last", or "best" epoch on the validation selection metric
    patience: int | None = None  # stop after this many epochs without a better validation value

    def asdict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    task: str
    datasets: Sequence[str]  # the first is the default
    methods: Sequence[Method]
    baseline: str
    metrics: Sequence[str]  # the report's columns, in order
    claim: Claim
    train: TrainConfig
    quick: dict  # overrides for --quick: epochs, max_train, max_eval
    pending: Sequence[Pending] = ()
    selection_metric: str = ""  # validation metric tracked per epoch (and used by select="best")
    notes: str = ""
    dataset_train: dict = field(default_factory=dict)  # dataset name -> TrainConfig overrides
    # A custom experiment (another model or protocol than the built-in MLP) supplies both:
    # prepare(dataset, *, quick, device, params) -> Prepared, once per run, and
    # trial(method, seed, prepared, train_config, run: TrialRun) -> TrialResult.
    prepare: Callable[..., Prepared] | None = None
    trial: Callable[..., TrialResult] | None = None
    curve_label: str = ""  # y label of history["val"] in training.png
    extra_plots: Callable[[Any], list[tuple[str, str]]] | None = None  # (summary) -> [(png, caption)]
    extra_markdown: Callable[[Any], str] | None = None  # (summary) -> a section appended to report.md

    def train_config(self, dataset: str) -> TrainConfig:
        """The training settings for ``dataset`` (the experiment's, with that dataset's overrides)."""
        return replace(self.train, **self.dataset_train.get(dataset, {}))

    @property
    def default_dataset(self) -> str:
        return self.datasets[0]

    def method(self, name: str) -> Method:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"method: expected one of {[m.name for m in self.methods]}, got {name!r}")

    def spec(self) -> dict:
        """The JSON-able description stored in a run directory's config.json (reports render from it)."""
        return {
            "name": self.name,
            "title": self.title,
            "task": self.task,
            "baseline": self.baseline,
            "metrics": list(self.metrics),
            "methods": [
                {
                    "name": m.name,
                    "description": m.description,
                    "params": m.params,
                    "train_as": m.train_as,
                    "signature": m.signature(),
                }
                for m in self.methods
            ],
            "pending": [asdict(p) for p in self.pending],
            "claim": {
                "text": self.claim.text,
                "source": self.claim.source,
                "checks": [asdict(c) | {"versus": list(c.versus)} for c in self.claim.checks],
            },
            "selection_metric": self.selection_metric,
            "notes": self.notes,
            "custom": self.trial is not None,
            "curve_label": self.curve_label,
            "metric_info": {m: asdict(metric_info(m)) for m in self._metric_names()},
        }

    def _metric_names(self) -> list[str]:
        names = list(self.metrics)
        for check in self.claim.checks:
            names += [check.metric, check.versus_metric or check.metric]
        return list(dict.fromkeys(names))


def lower_is_better(metric: str, spec: dict | None = None) -> bool:
    return metric_info(metric, spec).lower_is_better
