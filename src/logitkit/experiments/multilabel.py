"""The ``multilabel`` experiment: does ZLPR at threshold 0 match tuned BCE without tuning?

Protocol (reproduction_targets.md section 8, protocol A): an MLP (one hidden layer of 256, ReLU,
dropout 0.2) on yeast (default), scene or MovieLens genres; Adam 1e-3, batch 64, up to 60 epochs,
the epoch with the best validation mAP kept (early stopping, patience 10). Metrics at each loss's
native threshold (micro / macro F1, Hamming loss), threshold-free ones (macro mAP, ranking loss,
coverage, one-error), the calibration (ECE) of each loss's probability reading, and micro / macro F1
after per-label threshold tuning on the validation split.

Methods: BCE, BCE with ``pos_weight`` = negatives / positives per label, ASL (the paper's
gamma- = 4, gamma+ = 0, clip 0.05; :mod:`logitkit.experiments.asl`), sigmoid focal loss (gamma 2,
without and with alpha = 0.25), ZLPR and soft-label ZLPR on targets smoothed by 0.1 (decision
``logit > 0``, probabilities :func:`~logitkit.functional.zlpr_probs` = ``sigmoid(2 logit)``).
"""

from __future__ import annotations

import torch.nn.functional as F

import logitkit.functional as LF
from logitkit.experiments._spec import Check, Claim, Experiment, Method, TrainConfig
from logitkit.experiments.asl import asymmetric_loss


def _bce(ctx):
    return F.binary_cross_entropy_with_logits


def _bce_pos_weight(ctx):
    pos_weight = ctx.neg_pos_ratio

    def loss(logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    return loss


def _asl(gamma_neg, gamma_pos, clip):
    def build(ctx):
        def loss(logits, target):
            return asymmetric_loss(logits, target, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)

        return loss

    return build


def _sigmoid_focal(alpha):
    def build(ctx):
        def loss(logits, target):
            return LF.sigmoid_focal_loss(logits, target, gamma=2.0, alpha=alpha)

        return loss

    return build


def _zlpr(smoothing):
    def build(ctx):
        def loss(logits, target):
            if smoothing:
                target = target * (1.0 - smoothing) + smoothing / 2
            return LF.zlpr_loss(logits, target)

        return loss

    return build


METHODS = (
    Method("bce", "BCE, decision sigmoid > 0.5", loss=_bce),
    Method(
        "bce_pos_weight",
        "BCE with pos_weight = negatives / positives per label, decision sigmoid > 0.5",
        loss=_bce_pos_weight,
        params={"pos_weight": "neg/pos"},
    ),
    Method(
        "asl",
        "asymmetric loss (baseline from the paper's formula), decision sigmoid > 0.5",
        loss=_asl(4.0, 0.0, 0.05),
        params={"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05},
    ),
    Method(
        "sigmoid_focal",
        "sigmoid focal loss, gamma 2, no alpha, decision sigmoid > 0.5",
        loss=_sigmoid_focal(None),
        params={"gamma": 2.0, "alpha": None},
    ),
    Method(
        "sigmoid_focal_a25",
        "sigmoid focal loss, gamma 2, alpha 0.25, decision sigmoid > 0.5",
        loss=_sigmoid_focal(0.25),
        params={"gamma": 2.0, "alpha": 0.25},
    ),
    Method(
        "zlpr",
        "ZLPR (logitkit.functional.zlpr_loss), decision logit > 0, probability sigmoid(2 logit)",
        loss=_zlpr(0.0),
        params={"threshold": 0.0},
        prob_scale=2.0,
    ),
    Method(
        "soft_zlpr",
        "soft-label ZLPR on targets (1 - 0.1) y + 0.05, decision logit > 0, probability sigmoid(2 logit)",
        loss=_zlpr(0.1),
        params={"threshold": 0.0, "smoothing": 0.1},
        prob_scale=2.0,
    ),
)

CLAIM = Claim(
    text=(
        "ZLPR at its label-independent threshold 0 matches or beats BCE with tuned weights or "
        "thresholds, without tuning"
    ),
    source=(
        "post 7359; reproduction_targets.md section 8 (ZLPR@0 micro-F1 >= BCE@0.5 and within "
        "~1 point of the best tuned BCE)"
    ),
    checks=(
        Check("ZLPR@0 micro-F1 >= BCE@0.5 micro-F1", "zlpr", "micro_f1", ("bce",)),
        Check(
            "ZLPR@0 micro-F1 within 1 point of the best tuned BCE variant "
            "(per-label thresholds tuned on validation)",
            "zlpr",
            "micro_f1",
            ("bce", "bce_pos_weight"),
            versus_metric="tuned_micro_f1",
            margin=0.01,
        ),
    ),
)

EXPERIMENT = Experiment(
    name="multilabel",
    title="Multi-label losses without threshold tuning (ZLPR vs BCE)",
    task="multilabel",
    datasets=("yeast", "scene", "movielens"),
    methods=METHODS,
    baseline="bce",
    metrics=(
        "micro_f1",
        "macro_f1",
        "hamming",
        "map",
        "lrap",
        "ranking_loss",
        "one_error",
        "coverage",
        "ece",
        "tuned_micro_f1",
        "tuned_macro_f1",
    ),
    claim=CLAIM,
    train=TrainConfig(
        hidden=(256,), dropout=0.2, epochs=60, batch_size=64, lr=1e-3, select="best", patience=10
    ),
    quick={"epochs": 8, "max_train": 1500, "max_eval": 1000},
    selection_metric="map",
    notes=(
        "The model kept for each run is the epoch with the best validation mAP (patience 10). "
        "mAP is the macro mean of per-label average precision; avg. precision is the example-based "
        "label-ranking average precision of the multi-label literature. Reference points on yeast "
        "(ML-kNN, Zhang & Zhou 2007; recalled, unverified): Hamming 19.4, one-error 23.0, ranking "
        "loss 16.7, avg. precision 76.5; on scene: Hamming 8.5-9, avg. precision 85."
    ),
)
