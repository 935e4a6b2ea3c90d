"""The ``longtail`` experiment: does logit adjustment lower the balanced error of cross-entropy?

Protocol (reproduction_targets.md section 11): an MLP (two hidden layers of 256, ReLU) on a
long-tailed training set with a balanced test set: digits-LT (default, embedded: scikit-learn's
digits with the exponential profile, imbalance 100) or Fashion-MNIST-LT (imbalance 100, 14,886
images); Adam 1e-3, batch 128, 30 epochs (100 on the 254 images of digits-LT), the last epoch
evaluated. Metrics: balanced error,
accuracy, many / medium / few-class accuracy (training-frequency ranks 0-2 / 3-6 / 7-9), top-label
ECE. The prior p(y) is the training-label frequency.

Methods run now: cross-entropy (``logitkit.functional.cross_entropy``). The protocol's other methods
wait for their logitkit functions (``pending``); each becomes one ``Method`` entry, e.g.::

    Method("la_loss", "logit-adjusted CE, tau 1",
           loss=lambda ctx: partial(LF.logit_adjusted_cross_entropy, prior=ctx.prior, tau=1.0),
           params={"tau": 1.0})
    Method("ce_posthoc_la", "CE + post-hoc logit adjustment, tau 1", train_as="ce",
           posthoc=lambda ctx, logits, logits_val, y_val: LF.softmax(
               LF.adjust_logits(logits, ctx.prior, tau=1.0), dim=1),
           params={"tau": 1.0})
"""

from __future__ import annotations

import logitkit.functional as LF
from logitkit.experiments._spec import Check, Claim, Experiment, Method, Pending, TrainConfig


def _ce(ctx):
    return LF.cross_entropy


METHODS = (Method("ce", "cross-entropy (logitkit.functional.cross_entropy)", loss=_ce),)

PENDING = (
    Pending("ce_posthoc_la", "logitkit.functional.adjust_logits (post-hoc, tau 1) on the CE models", 4),
    Pending("la_loss", "logitkit.functional.logit_adjusted_cross_entropy (tau 1)", 4),
    Pending("focal", "logitkit.functional.focal_loss (gamma 2)", 4),
    Pending("truncated", "logitkit.functional.truncated_cross_entropy (margin 0.5)", 4),
    Pending(
        "class_balanced",
        "class-balanced weights (logitkit.functional, issue #4) with cross_entropy(weight=)",
        4,
    ),
    Pending("ce_can", "logitkit.functional.can (top_k 3, threshold 0.9, alpha 1) on the CE models", 4),
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
    pending=PENDING,
    selection_metric="balanced_accuracy",
    notes="The last epoch is evaluated (no early stopping); the validation set is used by post-hoc methods.",
    dataset_train={"digits-lt": {"epochs": 100}},  # 254 training images: 2 steps per epoch
)
