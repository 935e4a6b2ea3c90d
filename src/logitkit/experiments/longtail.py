"""The ``longtail`` experiment: does logit adjustment lower the balanced error of cross-entropy?

Protocol (reproduction_targets.md section 11): an MLP (two hidden layers of 256, ReLU) on a
long-tailed training set with a balanced test set: digits-LT (default, embedded: scikit-learn's
digits with the exponential profile, imbalance 100) or Fashion-MNIST-LT (imbalance 100, 14,886
images); Adam 1e-3, batch 128, 30 epochs (100 on the 254 images of digits-LT), the last epoch
evaluated. Metrics: balanced error,
accuracy, many / medium / few-class accuracy (training-frequency ranks 0-2 / 3-6 / 7-9), top-label
ECE. The prior p(y) is the training-label frequency.

Methods: cross-entropy (``logitkit.functional.cross_entropy``); post-hoc logit adjustment of the
CE models (:func:`~logitkit.functional.adjust_logits`, tau 1); the logit-adjusted loss
(:func:`~logitkit.functional.logit_adjusted_cross_entropy`, tau 1); focal loss (gamma 2); the
hard-truncated loss (margin 0.5); CE with class-balanced weights (beta 0.999); CAN on the CE models
(top_k 3, threshold 0.9, alpha 1). Post-hoc methods reuse the CE models of the same seed.
"""

from __future__ import annotations

from functools import partial

import torch

import logitkit.functional as LF
from logitkit.experiments._spec import Check, Claim, Experiment, Method, TrainConfig


def _ce(ctx):
    return LF.cross_entropy


def _la_loss(ctx):
    return partial(LF.logit_adjusted_cross_entropy, prior=ctx.prior, tau=1.0)


def _focal(ctx):
    return partial(LF.focal_loss, gamma=2.0)


def _truncated(ctx):
    return partial(LF.truncated_cross_entropy, margin=0.5)


def _class_balanced(ctx):
    counts = torch.as_tensor(ctx.train_counts, dtype=torch.float32, device=ctx.device)
    return partial(LF.cross_entropy, weight=LF.class_balanced_weights(counts, beta=0.999))


def _posthoc_la(ctx, logits, logits_val, y_val):
    return LF.softmax(LF.adjust_logits(logits.float(), ctx.prior.cpu(), tau=1.0), dim=1)


def _can(ctx, logits, logits_val, y_val):
    probs = LF.softmax(logits.float(), dim=1)
    return LF.can(probs, ctx.prior.cpu(), top_k=3, threshold=0.9, alpha=1.0)


METHODS = (
    Method("ce", "cross-entropy (logitkit.functional.cross_entropy)", loss=_ce),
    Method(
        "ce_posthoc_la",
        "CE models + post-hoc logit adjustment (adjust_logits, tau 1)",
        train_as="ce",
        posthoc=_posthoc_la,
        params={"tau": 1.0},
    ),
    Method("la_loss", "logit-adjusted cross-entropy, tau 1", loss=_la_loss, params={"tau": 1.0}),
    Method("focal", "focal loss, gamma 2", loss=_focal, params={"gamma": 2.0}),
    Method("truncated", "hard-truncated cross-entropy, margin 0.5", loss=_truncated, params={"margin": 0.5}),
    Method(
        "class_balanced",
        "cross-entropy with class-balanced weights (beta 0.999)",
        loss=_class_balanced,
        params={"beta": 0.999},
    ),
    Method(
        "ce_can",
        "CE models + CAN (top_k 3, threshold 0.9, alpha 1)",
        train_as="ce",
        posthoc=_can,
        params={"top_k": 3, "threshold": 0.9, "alpha": 1.0},
    ),
)

CLAIM = Claim(
    text=(
        "Logit adjustment (post-hoc or as a loss) lowers the balanced error of cross-entropy "
        "on long-tailed data"
    ),
    source=(
        "Menon et al., ICLR 2021, Table 2 (CIFAR-10-LT balanced error: CE 27.16, post-hoc 22.60, "
        "LA loss 22.33); "
        "post 7615; reproduction_targets.md section 11"
    ),
    checks=(
        Check("LA loss balanced error < CE", "la_loss", "balanced_error", ("ce",), strict=True),
        Check(
            "CE + post-hoc LA balanced error < CE", "ce_posthoc_la", "balanced_error", ("ce",), strict=True
        ),
    ),
)

EXPERIMENT = Experiment(
    name="longtail",
    title="Long-tail classification: logit adjustment vs cross-entropy",
    task="multiclass",
    datasets=("digits-lt", "fashion-mnist-lt"),
    methods=METHODS,
    baseline="ce",
    metrics=("balanced_error", "accuracy", "many_accuracy", "medium_accuracy", "few_accuracy", "ece"),
    claim=CLAIM,
    train=TrainConfig(hidden=(256, 256), dropout=0.0, epochs=30, batch_size=128, lr=1e-3, select="last"),
    quick={"epochs": 5, "max_train": 3000, "max_eval": 2000},
    selection_metric="balanced_accuracy",
    notes="The last epoch is evaluated (no early stopping); the validation set is used by post-hoc methods.",
    dataset_train={"digits-lt": {"epochs": 100}},  # 254 training images: 2 steps per epoch
)
