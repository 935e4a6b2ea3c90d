"""Text corpora for language models and text classifiers: Jane Austen's six novels, and the Python
language reference that ships with every Python.

* **austen** — Debian ``r-cran-janeaustenr`` 1.0.0 (MIT; Julia Silge), objects ``emma``,
  ``mansfieldpark``, ``northangerabbey``, ``persuasion``, ``prideprejudice`` and
  ``sensesensibility`` of the lazy-load database ``janeaustenr/data/Rdata`` (one string per line of
  the Project Gutenberg text, 73,422 lines). Read without R (``apt-get download`` + ``dpkg-deb -x``,
  see :mod:`logitkit.data._paths`). Each novel is cut into its chapters at the ``CHAPTER`` / ``Chapter``
  headings (55 / 48 / 31 / 24 / 61 / 50 = 269 chapters); the text before the first heading (title,
  preface) and heading lines (chapters, volumes) are dropped; lines of a paragraph are joined by a
  space and paragraphs by a newline. The **fixed split** is by whole chapters, per novel, with a
  seeded shuffle (seed 0): 10 % of each novel's chapters (at least one) for validation, 10 % (at
  least one) for testing, the rest for training (215 / 27 / 27 chapters). A chapter is one document;
  its label is its novel, so the same split serves a character language model (train on the
  training chapters, evaluate on whole unseen chapters) and passage -> novel classification.

* **pydoc-topics** — the standard library's ``pydoc_data.topics`` (PSF licence): the ~80 topics of
  the Python language reference as plain text (about 0.5M characters; the exact text depends on the
  Python version, which the description names). One topic is one document, all of one class. The
  **fixed split** takes the topics in sorted order: every tenth (``i % 10 == 9``) is held out for
  testing and ``i % 10 == 8`` for validation.

Text corpora are not feature matrices: the loader returns a :class:`TextCorpus` (task ``"text"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from logitkit.data._paths import cached_arrays, debian_file
from logitkit.data._rdata import read_lazyload
from logitkit.data._registry import DatasetInfo, register

__all__ = ["AUSTEN_NOVELS", "TextCorpus", "load_austen", "load_pydoc_topics"]

SPLIT_SEED = 0


@dataclass(frozen=True)
class TextCorpus:
    """Documents (strings) with labels and a fixed train / validation / test split."""

    name: str
    train: tuple[str, ...]
    y_train: np.ndarray
    val: tuple[str, ...]
    y_val: np.ndarray
    test: tuple[str, ...]
    y_test: np.ndarray
    class_names: tuple[str, ...]
    split: str = ""
    params: dict = field(default_factory=dict)
    task: str = "text"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> tuple[int, int, int]:
        """Documents per part."""
        return len(self.train), len(self.val), len(self.test)

    def chars(self) -> tuple[int, int, int]:
        """Characters per part."""
        return tuple(sum(len(doc) for doc in part) for part in (self.train, self.val, self.test))

    def train_counts(self) -> np.ndarray:
        return np.bincount(self.y_train, minlength=self.num_classes).astype(np.int64)

    def describe(self) -> str:
        n_train, n_val, n_test = self.sizes()
        c_train, c_val, c_test = self.chars()
        return (
            f"{self.name}: {n_train} / {n_val} / {n_test} documents "
            f"({c_train:,} / {c_val:,} / {c_test:,} characters), {self.num_classes} classes"
        )


# ----------------------------------------------------------------------------- Jane Austen

AUSTEN_DB = "usr/lib/R/site-library/janeaustenr/data/Rdata"
AUSTEN_NOVELS = (
    ("emma", "Emma"),
    ("mansfieldpark", "Mansfield Park"),
    ("northangerabbey", "Northanger Abbey"),
    ("persuasion", "Persuasion"),
    ("prideprejudice", "Pride and Prejudice"),
    ("sensesensibility", "Sense and Sensibility"),
)
_HEADING = re.compile(r"^\s*chapter\b", re.IGNORECASE)
_VOLUME = re.compile(r"^\s*(volume\b|the end\s*$)", re.IGNORECASE)


def _austen_available() -> bool:
    return debian_file(AUSTEN_DB + ".rdx") is not None and debian_file(AUSTEN_DB + ".rdb") is not None


def _chapters(lines: list[str]) -> list[str]:
    """Chapters of one novel: paragraphs (blank-line separated) joined by newlines."""
    chapters: list[list[str]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph and chapters:
            chapters[-1].append(" ".join(paragraph))
        paragraph.clear()

    for raw in lines:
        line = " ".join(raw.split())
        if _HEADING.match(line):
            flush()
            chapters.append([])
        elif not line or _VOLUME.match(line):
            flush()
        else:
            paragraph.append(line)
    flush()
    return ["\n".join(chapter) for chapter in chapters]


def _austen_arrays() -> dict[str, np.ndarray]:
    """Every chapter as UTF-8 bytes in one array, with byte lengths and novel labels (cacheable)."""
    base = debian_file(AUSTEN_DB + ".rdx").with_suffix("")
    chunks, lengths, labels = [], [], []
    for label, (obj, _) in enumerate(AUSTEN_NOVELS):
        for chapter in _chapters([str(s) for s in read_lazyload(base, obj)]):
            raw = chapter.encode("utf-8")
            chunks.append(raw)
            lengths.append(len(raw))
            labels.append(label)
    return {
        "text": np.frombuffer(b"".join(chunks), dtype=np.uint8),
        "lengths": np.asarray(lengths, dtype=np.int64),
        "labels": np.asarray(labels, dtype=np.int64),
    }


def load_austen() -> TextCorpus:
    arrays = cached_arrays("janeaustenr-1.0.0-chapters", _austen_arrays)
    raw = arrays["text"].tobytes()
    ends = np.cumsum(arrays["lengths"])
    starts = ends - arrays["lengths"]
    chapters = [raw[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]
    labels = arrays["labels"]
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, tuple[list[str], list[int]]] = {p: ([], []) for p in ("train", "val", "test")}
    for label in range(len(AUSTEN_NOVELS)):
        members = np.flatnonzero(labels == label)
        order = rng.permutation(len(members))
        n_held = max(1, round(0.1 * len(members)))
        assignment = {"val": order[:n_held], "test": order[n_held : 2 * n_held], "train": order[2 * n_held :]}
        for part, idx in assignment.items():
            for i in sorted(idx):
                parts[part][0].append(chapters[members[i]])
                parts[part][1].append(label)
    split = (
        "whole chapters, per novel, seeded (seed 0): 10% validation, 10% test, 80% train "
        "(215 / 27 / 27 chapters)"
    )
    return TextCorpus(
        name="austen",
        **{
            key: value
            for part, (docs, labels) in parts.items()
            for key, value in (
                (part, tuple(docs)),
                (f"y_{part}", np.asarray(labels, dtype=np.int64)),
            )
        },
        class_names=tuple(title for _, title in AUSTEN_NOVELS),
        split=split,
    )


register(
    DatasetInfo(
        name="austen",
        task="text",
        title="Jane Austen's six novels, by chapter (269 chapters, ~3.9M characters)",
        source="Debian r-cran-janeaustenr 1.0.0 (janeaustenr/data/Rdata lazy-load database)",
        licence="MIT (janeaustenr, Julia Silge); the novels are public domain (Project Gutenberg)",
        citation=(
            "J. Silge. janeaustenr: Jane Austen's Complete Novels. R package 1.0.0 (CRAN, 2022); "
            "texts from Project Gutenberg"
        ),
        split="whole chapters per novel, seeded (seed 0): 215 train / 27 validation / 27 test",
        shape="6 novels, 73,422 lines, 269 chapters",
        loader=load_austen,
        available=_austen_available,
        obtain=(
            "apt-get update && apt-get install -y r-cran-janeaustenr",
            "or, without R: apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb "
            '"${LOGITKIT_DATA:-$HOME/.cache/logitkit}/debian"',
        ),
    )
)


# ----------------------------------------------------------------------- Python reference


def load_pydoc_topics() -> TextCorpus:
    import sys
    from pydoc_data import topics

    keys = sorted(topics.topics)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, key in enumerate(keys):
        parts["val" if i % 10 == 8 else "test" if i % 10 == 9 else "train"].append(topics.topics[key])
    return TextCorpus(
        name="pydoc-topics",
        **{
            key: value
            for part, docs in parts.items()
            for key, value in ((part, tuple(docs)), (f"y_{part}", np.zeros(len(docs), dtype=np.int64)))
        },
        class_names=(f"Python {sys.version_info[0]}.{sys.version_info[1]} reference",),
        split="topics in sorted order: every 10th (i % 10 == 9) held out, i % 10 == 8 validation",
    )


register(
    DatasetInfo(
        name="pydoc-topics",
        task="text",
        title="The Python language reference topics (stdlib pydoc_data.topics, ~0.5M characters)",
        source="the Python standard library (pydoc_data/topics.py), embedded in every Python install",
        licence="PSF License (Python documentation)",
        citation="Python Software Foundation, The Python Language Reference",
        split="topics in sorted order: every 10th held out (test), the 9th of every 10 validation",
        shape="one document per topic (~80 topics), one class",
        loader=load_pydoc_topics,
        available=lambda: True,
        obtain=("embedded: part of the Python standard library",),
    )
)
