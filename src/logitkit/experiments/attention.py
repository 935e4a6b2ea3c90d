"""``attention``: does the entropy-invariant scale :math:`\\log_{512} n/\\sqrt d` help at longer inputs?

Post 8823 trains a small RoFormer masked language model at length 64 and tests it at 64 ... 1024:
equal accuracy at 64, clearly better at 128-256 with the entropy-invariant scale. Here: a
character-level MLM encoder (2 pre-LN layers, d = 128, 4 heads, FFN 512, RoPE) on Jane Austen's
novels (registry ``austen``: training chapters for training, unseen chapters for evaluation), trained
at length 64 with the standard scale (``standard``) or with
:func:`logitkit.models.attention.entropy_invariant_attention` (``entropy``, base 512 as in the post),
then evaluated by masked-character accuracy at 64, 128, 256, 512 and 1024 on the same held-out
characters and the same masked positions for every length and model.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from logitkit.experiments import _chartext as ct
from logitkit.experiments._spec import (
    Check,
    Claim,
    Experiment,
    Method,
    Prepared,
    TrainConfig,
    TrialResult,
    define_metric,
)

LENGTHS = (64, 128, 256, 512, 1024)
TRAIN_LENGTH = 64
MASK_RATE = 0.15
STEPS_PER_EPOCH = 50  # one "epoch" of this experiment = 50 optimisation steps on random windows
WARMUP = 40
EVAL_CHARS = 32 * 1024  # held-out characters scored at every length (quick: 2 * 1024)
VAL_CHARS = 64 * TRAIN_LENGTH  # quick: 16 windows

for _n in LENGTHS:
    define_metric(f"acc_{_n}", f"acc@{_n}")
define_metric("train_seconds", "train s", lower_is_better=True, percent=False)


def _prepare(dataset, *, quick, device, params):
    corpus = ct.load_corpus(dataset)
    train_text = "\n\n".join(corpus.train)
    vocab = ct.CharVocab(train_text)
    eval_chars = 2 * 1024 if quick else EVAL_CHARS
    test = vocab.encode("\n\n".join(corpus.test))[:eval_chars]
    val = vocab.encode("\n\n".join(corpus.val))[: VAL_CHARS // 4 if quick else VAL_CHARS]
    # One masking of the held-out stream, shared by every length and model (paired comparison).
    g = torch.Generator().manual_seed(1234)
    test_in, test_target = ct.mlm_corrupt(test, len(vocab), MASK_RATE, g)
    val_in, val_target = ct.mlm_corrupt(val, len(vocab), MASK_RATE, g)
    payload = {
        "vocab": vocab,
        "train": vocab.encode(train_text),
        "test": (test, test_in, test_target),
        "val": (val, val_in, val_target),
    }
    c_train, _, _ = corpus.chars()
    return Prepared(
        name=dataset,
        describe=(
            f"{corpus.describe()}; {len(vocab)}-symbol character vocabulary; evaluation on the first "
            f"{eval_chars:,} characters of the test chapters ({int(test_target.sum()):,} masked)"
        ),
        split=corpus.split,
        data=payload,
        sizes=(c_train, eval_chars),
        params=params,
    )


def _score(encoder, head, ids, inputs, target, length):
    """Masked-token accuracy and mean NLL over the stream cut into windows of ``length``."""
    n = (len(ids) // length) * length
    with torch.no_grad():
        x = inputs[:n].view(-1, length)
        correct, nll, count = 0.0, 0.0, 0
        for start in range(0, len(x), 8):
            rows = slice(start, start + 8)
            logits = head(encoder(x[rows]))
            mask = target[:n].view(-1, length)[rows]
            truth = ids[:n].view(-1, length)[rows][mask]
            picked = logits[mask]
            correct += float((picked.argmax(-1) == truth).sum())
            nll += float(F.cross_entropy(picked, truth, reduction="sum"))
            count += int(mask.sum())
    return correct / max(count, 1), nll / max(count, 1)


def _trial(method, seed, prepared, config, run):
    payload = prepared.data
    vocab, train = payload["vocab"], payload["train"]
    batch = 8 if run.quick else config.batch_size
    steps_per_epoch = 10 if run.quick else STEPS_PER_EPOCH
    total = config.epochs * steps_per_epoch
    torch.manual_seed(seed)
    encoder = ct.CharEncoder(len(vocab), scale=method.params["scale"], base_length=512)
    head = torch.nn.Linear(encoder.norm.normalized_shape[0], len(vocab))
    parameters = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: ct.warmup_linear(step, min(WARMUP, total // 5 or 1), total)
    )
    g = torch.Generator().manual_seed(10_000 + seed)
    curve, train_curve = [], []
    started = time.perf_counter()
    for epoch in range(config.epochs):
        encoder.train()
        losses = []
        for _ in range(steps_per_epoch):
            starts = torch.randint(0, len(train) - TRAIN_LENGTH, (batch,), generator=g)
            ids = train[starts[:, None] + torch.arange(TRAIN_LENGTH)]
            inputs, target = ct.mlm_corrupt(ids, len(vocab), MASK_RATE, g)
            logits = head(encoder(inputs))[target]
            loss = F.cross_entropy(logits, ids[target])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        encoder.eval()
        curve.append(_score(encoder, head, *payload["val"], TRAIN_LENGTH)[1])
        train_curve.append(float(np.mean(losses)))
        run.tick(f"step {(epoch + 1) * steps_per_epoch}/{total}")
    seconds = time.perf_counter() - started
    encoder.eval()
    metrics = {"train_seconds": seconds}
    nll = {}
    for length in LENGTHS:
        metrics[f"acc_{length}"], nll[length] = _score(encoder, head, *payload["test"], length)
    return TrialResult(
        metrics=metrics,
        history={"val": curve, "train": train_curve, "test_nll": [nll[n] for n in LENGTHS]},
        best_epoch=config.epochs - 1,
    )


def _plots(summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in summary.methods:
        accs = np.array(
            [
                [r["metrics"][f"acc_{n}"] for n in LENGTHS]
                for (m, _), r in summary.records.items()
                if m == method
            ]
        )
        if not len(accs):
            continue
        axes[0].errorbar(
            LENGTHS, 100 * accs.mean(0), yerr=100 * accs.std(0), marker="o", capsize=3, label=method
        )
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("evaluation length (characters; trained at 64)")
    axes[0].set_ylabel("masked-character accuracy (%)")
    axes[0].legend()
    analytic = ct.entropy_vs_length(LENGTHS, 32, base_length=512)
    for name, values in analytic.items():
        axes[1].plot(LENGTHS, values, marker="o", label=name)
    axes[1].plot(LENGTHS, np.log(LENGTHS), ls=":", color="grey", label="log n (uniform)")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("number of keys n")
    axes[1].set_ylabel("mean attention entropy (nats)")
    axes[1].set_title("random unit-sphere q, k (d = 32, norm sqrt(d))")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(summary.dir / "length.png", dpi=110)
    plt.close(fig)
    return [
        (
            "length.png",
            "Left: masked-character accuracy against evaluation length (mean +/- std over seeds). "
            "Right: the analytic check, mean attention entropy of random directions against n.",
        )
    ]


NOTES = (
    "Model: character-level masked language model, 2 pre-LN transformer layers, d = 128, 4 heads "
    "(head size 32), FFN 512 (GELU), rotary position embeddings, a linear output head; BERT masking "
    "of 15% of the characters (80% <mask>, 10% random, 10% unchanged). Trained on random 64-character "
    "windows of the training chapters: AdamW (lr 1e-3, weight decay 0.01), 40-step warm-up then linear "
    "decay, gradient clipping at 1, batch 32. `standard` uses softmax(QK^T/sqrt(d)); `entropy` uses "
    "logitkit.models.attention.entropy_invariant_attention with base 512 (the post's log_512 n), "
    "during training and evaluation. Evaluation: the first 32,768 characters of the unseen test "
    "chapters, masked once (seed 1234) and cut into windows of 64 ... 1024 characters, so every length "
    "and model scores the same masked characters. Scaled down from the protocol (2,000 steps, 200-step "
    "warm-up, batch 64) to 400 steps of batch 32 (820k training characters, a quarter of the training "
    "text) so that 2 models x 3 seeds train in about 10 minutes on one shared CPU thread; an "
    "'epoch' here is 50 optimisation steps and the training curve is the validation MLM loss at "
    "length 64. Corpus: Jane Austen (the protocol's alternative to the KJV)."
)

EXPERIMENT = Experiment(
    name="attention",
    title="Entropy-invariant attention scale: length extrapolation of a character MLM",
    task="multiclass",
    datasets=("austen",),
    methods=(
        Method("standard", "softmax(QK^T / sqrt(d)) (Attention-O)", params={"scale": "standard"}),
        Method("entropy", "softmax(log_512(n) QK^T / sqrt(d)) (Attention-E)", params={"scale": "entropy"}),
    ),
    baseline="standard",
    metrics=(*(f"acc_{n}" for n in LENGTHS), "train_seconds"),
    claim=Claim(
        "the entropy-invariant scale matches the standard one at the training length and is clearly "
        "better at longer lengths (post: -0.16 points at 64, +11.0 at 256); both decline with length",
        "J. Su, kexue.fm/archives/8823 (2021)",
        (
            Check("E within 1 point of O at n = 64", "entropy", "acc_64", ("standard",), margin=0.01),
            Check(
                "E better than O by at least 5 points at n = 256",
                "entropy",
                "acc_256",
                ("standard",),
                margin=0.05,
                strict=True,
            ),
            Check("E better than O at n = 128", "entropy", "acc_128", ("standard",), strict=True),
            Check(
                "O declines from 64 to 1024",
                "standard",
                "acc_64",
                ("standard",),
                versus_metric="acc_1024",
                strict=True,
            ),
            Check(
                "E declines from 64 to 1024",
                "entropy",
                "acc_64",
                ("entropy",),
                versus_metric="acc_1024",
                strict=True,
            ),
        ),
    ),
    train=TrainConfig(hidden=(128,), epochs=8, batch_size=32, lr=1e-3, weight_decay=0.01),
    quick={"epochs": 1},
    prepare=_prepare,
    trial=_trial,
    curve_label="validation MLM loss at length 64 (nats)",
    extra_plots=_plots,
    notes=NOTES,
)
