"""``droptoken``: does dropping input tokens while training (DropToken) help a text classifier?

Post 8770 fine-tunes BERT on six CLUE tasks with DropToken rates 0 ... 0.5: small, uneven gains
(best at 0.1-0.15 on some tasks), clear losses at 0.5 on the sentence-pair tasks. Here: 32-word
passages of Jane Austen's novels (registry ``austen``) -> which novel (6 classes), a small word-level
transformer classifier trained from scratch, with :func:`logitkit.models.masking.drop_tokens` applied
to every training batch at rate 0, 0.1, 0.15, 0.25 or 0.5 (kept words keep their original position
ids; nothing is dropped at evaluation).
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
from logitkit.models.masking import drop_tokens

PASSAGE = 32  # words (and punctuation marks) per passage
MAX_TRAIN = 8000  # training passages (a seeded subset of all ~22k); quick: 300
MAX_QUICK_EVAL = 400
MAX_VAL = 1000  # validation passages scored after every epoch (a seeded subset)
RATES = (0.0, 0.1, 0.15, 0.25, 0.5)
DIM, LAYERS, HEADS, FFN = 64, 2, 4, 256

define_metric("train_seconds", "train s", lower_is_better=True, percent=False)


def _passages(docs, labels, vocab):
    """Non-overlapping 32-token passages of each chapter (the remainder is dropped)."""
    xs, ys = [], []
    for doc, label in zip(docs, labels, strict=True):
        ids = vocab.encode(ct.words(doc))
        n = len(ids) // PASSAGE
        if n:
            xs.append(ids[: n * PASSAGE].view(n, PASSAGE))
            ys.append(torch.full((n,), int(label), dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _prepare(dataset, *, quick, device, params):
    corpus = ct.load_corpus(dataset)
    vocab = ct.WordVocab([w for doc in corpus.train for w in ct.words(doc)])
    parts = {
        part: _passages(getattr(corpus, part), getattr(corpus, f"y_{part}"), vocab)
        for part in ("train", "val", "test")
    }
    rng = np.random.default_rng(0)
    x, y = parts["train"]
    keep = np.sort(rng.permutation(len(y))[: 300 if quick else MAX_TRAIN])
    parts["train"] = (x[keep], y[keep])
    for part, cap in (
        ("val", MAX_QUICK_EVAL if quick else MAX_VAL),
        ("test", MAX_QUICK_EVAL if quick else None),
    ):
        x, y = parts[part]
        if cap is not None and cap < len(y):
            idx = np.sort(rng.permutation(len(y))[:cap])
            parts[part] = (x[idx], y[idx])
    sizes = tuple(len(parts[p][1]) for p in ("train", "val", "test"))
    counts = np.bincount(parts["train"][1].numpy(), minlength=corpus.num_classes)
    return Prepared(
        name=dataset,
        describe=(
            f"{corpus.describe()}; {PASSAGE}-token passages -> novel ({len(vocab):,}-token vocabulary): "
            f"{sizes[0]:,} train "
            f"(seeded subset) / {sizes[1]:,} validation / {sizes[2]:,} test passages"
        ),
        split=corpus.split + "; passages inherit their chapter's part",
        data={"vocab": vocab, **parts},
        sizes=sizes,
        classes=corpus.class_names,
        train_counts=counts.tolist(),
        params=params,
    )


class _Classifier(torch.nn.Module):
    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.encoder = ct.CharEncoder(vocab, dim=DIM, layers=LAYERS, heads=HEADS, ffn=FFN)
        self.head = torch.nn.Linear(DIM, classes)

    def forward(self, ids, positions=None, keep=None):
        h = self.encoder(ids, positions, keep)
        if keep is None:
            return self.head(h.mean(1))
        w = keep.unsqueeze(-1).to(h.dtype)
        return self.head((h * w).sum(1) / w.sum(1).clamp_min(1))


def _evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])
    pred = logits.argmax(1)
    return float((pred == y).double().mean()), pred


def _trial(method, seed, prepared, config, run):
    payload = prepared.data
    x, y = payload["train"]
    rate = method.params["rate"]
    torch.manual_seed(seed)
    model = _Classifier(len(payload["vocab"]), len(prepared.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(y) // config.batch_size)
    total = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: ct.warmup_linear(s, max(1, total // 10), total))
    g = torch.Generator().manual_seed(20_000 + seed)
    curve = []
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(y), generator=g)
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            dropped = drop_tokens(x[idx], None, rate, generator=g, pad_id=ct.PAD)
            logits = model(dropped.input_ids, dropped.position_ids, dropped.attention_mask)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        curve.append(_evaluate(model, *payload["val"])[0])
        run.tick(f"epoch {epoch + 1}/{config.epochs}")
    seconds = time.perf_counter() - started
    x_test, y_test = payload["test"]
    accuracy, pred = _evaluate(model, x_test, y_test)
    per_class = [float((pred[y_test == c] == c).double().mean()) for c in range(len(prepared.classes))]
    return TrialResult(
        metrics={"accuracy": accuracy, "val_accuracy": curve[-1], "train_seconds": seconds},
        per_class=per_class,
        history={"val": curve},
        best_epoch=config.epochs - 1,
    )


define_metric("val_accuracy", "val. accuracy")


def _name(rate: float) -> str:
    return f"rate-{rate:g}"


NOTES = (
    f"Model: a word-level transformer classifier trained from scratch: {LAYERS} pre-LN layers, "
    f"d = {DIM}, {HEADS} heads, FFN {FFN}, rotary position embeddings, mean pooling over the kept "
    "tokens, a linear layer to the 6 novels. AdamW (lr 1e-3, weight decay 0.01), 10% warm-up then "
    f"linear decay, batch 64, gradient clipping at 1. Data: non-overlapping {PASSAGE}-token passages "
    f"(lower-cased words and punctuation marks; the 8,000 most frequent training words, the rest <unk>) "
    f"of each chapter; seeded subsets of {MAX_TRAIN:,} training and {MAX_VAL:,} validation passages; all "
    "test passages (unseen chapters). DropToken: logitkit.models.masking.drop_tokens on every training "
    "batch; the kept tokens are compacted with their original position ids (RoPE uses them), so "
    "training also runs on shorter sequences; evaluation drops nothing. Scaled down from the protocol "
    "(fine-tuning the section-7 MLM encoder pre-trained on the KJV; 5 seeds; Brown genres too) to a "
    "word-level classifier trained from scratch, 3 seeds, one corpus, so that 5 rates x 3 seeds train "
    "in about 10 minutes on one CPU thread. The MLM embedding correction (mlm_consistent_embeddings) is not "
    "run: it needs an MLM-pretrained encoder."
)

EXPERIMENT = Experiment(
    name="droptoken",
    title="DropToken: dropping input tokens while training a text classifier",
    task="multiclass",
    datasets=("austen",),
    methods=tuple(
        Method(_name(r), f"drop each training token with probability {r:g}", params={"rate": r})
        for r in RATES
    ),
    baseline=_name(0.0),
    metrics=("accuracy", "val_accuracy", "train_seconds"),
    claim=Claim(
        "DropToken gives small, uneven gains, best at rates 0.1-0.15, and hurts at 0.5",
        "J. Su, kexue.fm/archives/8770 (2021), CLUE fine-tuning table",
        (
            Check("rate 0.1 at least as accurate as no dropping", _name(0.1), "accuracy", (_name(0.0),)),
            Check("rate 0.15 at least as accurate as no dropping", _name(0.15), "accuracy", (_name(0.0),)),
            Check(
                "rate 0.5 less accurate than no dropping", _name(0.0), "accuracy", (_name(0.5),), strict=True
            ),
        ),
    ),
    train=TrainConfig(hidden=(DIM,), epochs=4, batch_size=64, lr=1e-3, weight_decay=0.01),
    quick={"epochs": 1},
    prepare=_prepare,
    trial=_trial,
    curve_label="",
    notes=NOTES,
)
