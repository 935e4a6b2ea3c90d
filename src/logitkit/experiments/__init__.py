"""Experiment registry, runner and report: ``logitkit run NAME`` checks a technique's claim on real data.

An experiment (:class:`Experiment`) is a dataset (default + alternatives), a model, methods with
hyper-parameters (:class:`Method`), metrics and the claim it checks (:class:`Claim`).
:func:`run` trains every (method, seed) pair, appending each finished result to
``results.jsonl`` (resumable), and :func:`render` writes ``report.md`` and PNG plots.

>>> from logitkit import experiments
>>> experiments.names()  # doctest: +NORMALIZE_WHITESPACE
['multilabel', 'longtail', 'flooding', 'tailr', 'exact', 'closed_form', 'focal', 'can',
 'topk', 'vae_density', 'am_softmax', 'attention', 'droptoken', 'entropy_sampling']
"""

from __future__ import annotations

from logitkit.experiments._spec import Check, Claim, Context, Experiment, Method, Pending, TrainConfig

__all__ = [
    "Check",
    "Claim",
    "Context",
    "Experiment",
    "Method",
    "Pending",
    "TrainConfig",
    "get",
    "names",
    "register",
    "render",
    "run",
]

_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add (or replace) an experiment."""
    _REGISTRY[experiment.name] = experiment
    return experiment


def _populate() -> None:
    if not _REGISTRY:
        from logitkit.experiments import (
            am_softmax,
            attention,
            can,
            closed_form,
            droptoken,
            entropy_sampling,
            exact,
            flooding,
            focal,
            longtail,
            multilabel,
            tailr,
            topk,
            vae_density,
        )

        register(multilabel.EXPERIMENT)
        register(longtail.EXPERIMENT)
        register(flooding.EXPERIMENT)
        register(tailr.EXPERIMENT)
        register(exact.EXPERIMENT)
        register(closed_form.EXPERIMENT)
        register(focal.EXPERIMENT)
        register(can.EXPERIMENT)
        register(topk.EXPERIMENT)
        register(vae_density.EXPERIMENT)
        register(am_softmax.EXPERIMENT)
        register(attention.EXPERIMENT)
        register(droptoken.EXPERIMENT)
        register(entropy_sampling.EXPERIMENT)


def names() -> list[str]:
    _populate()
    return list(_REGISTRY)


def get(name: str) -> Experiment:
    _populate()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"experiment: expected one of {sorted(_REGISTRY)}, got {name!r}") from None


def run(experiment, **kwargs):
    """See :func:`logitkit.experiments.runner.run`."""
    from logitkit.experiments.runner import run as _run

    return _run(experiment, **kwargs)


def render(run_dir, **kwargs):
    """See :func:`logitkit.experiments.report.render`."""
    from logitkit.experiments.report import render as _render

    return _render(run_dir, **kwargs)
