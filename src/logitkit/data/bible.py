"""KJV <-> World English Bible verse pairs (paraphrase groups of size two), for AM-Softmax retrieval.

Source: Debian ``sword-text-kjv`` 14.3-1 (module ``engKJV2006eb``, KJV versification) and
``sword-text-web`` 426.0-1 (module ``engWEB2015eb``, NRSVA versification), both
``DistributionLicense=Public Domain``, read through the SWORD library's Python bindings (Debian
``python3-sword`` 1.9.0, built for the system ``/usr/bin/python3``: the export runs there in a
subprocess, once, and the pairs are cached as arrays).

Procedure (data.md section 6): walk a KJV-versification verse key from Gen 1:1 to Rev 22:21 (31,102
references), fetch both modules' raw entries by reference, delete ``<note>...</note>`` footnotes,
replace every other markup tag by a space, drop pilcrows, remove spaces before punctuation, collapse
whitespace; keep pairs where both sides are non-empty (31,095), then drop pairs whose length ratio
exceeds 3 or with a side over 600 characters (31,090 pairs).

Fixed split (seed 0): a seeded permutation of the 31,090 verses; the first 5,000 are the test verses,
the next 1,000 the validation verses and the remaining 25,090 the training verses (each verse is a
class with its two translations as members). No verse is in two parts.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from dataclasses import dataclass, field

import numpy as np

from logitkit.data._paths import cached_arrays, debian_file
from logitkit.data._registry import DatasetInfo, register

__all__ = ["VersePairs", "clean_entry", "load_kjv_web"]

SYSTEM_PYTHON = "/usr/bin/python3"
MODULES = ("engKJV2006eb", "engWEB2015eb")
SPLIT_SEED = 0
N_TEST, N_VAL = 5_000, 1_000

_EXPORT = r"""
import json, sys
import Sword
mgr = Sword.SWMgr()
kjv, web = mgr.getModule("engKJV2006eb"), mgr.getModule("engWEB2015eb")
if kjv is None or web is None:
    sys.exit("SWORD modules engKJV2006eb / engWEB2015eb not installed")
key = Sword.VerseKey()
key.setVersificationSystem("KJV")
key.setText("Gen 1:1")
last = None
while True:
    ref = key.getOSISRef()
    if ref == last:
        break
    last = ref
    kjv.setKey(key)
    a = kjv.getRawEntry()
    other = Sword.VerseKey()
    other.setVersificationSystem("NRSVA")
    other.setText(key.getText())
    web.setKey(other)
    b = web.getRawEntry()
    sys.stdout.write(json.dumps([ref, a, b]) + "\n")
    key.increment()
"""

_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE_PUNCT = re.compile(r"\s+([,.;:!?)\]'\u2019\u201d])")
_WS = re.compile(r"\s+")


def clean_entry(raw: str) -> str:
    """Plain text of a raw OSIS entry: notes deleted, tags -> spaces, no pilcrow, tidy spacing.

    Example:
        >>> clean_entry('<w lemma="x">In</w> the<note>a note</note> <w>beginning</w> .')
        'In the beginning.'
    """
    text = _TAG.sub(" ", _NOTE.sub("", raw)).replace("\u00b6", " ")
    return _WS.sub(" ", _SPACE_PUNCT.sub(r"\1", text)).strip()


@dataclass(frozen=True)
class VersePairs:
    """Aligned verses: ``refs[i]`` (OSIS), ``kjv[i]`` and ``web[i]``, with a fixed split of verse
    indices (``train`` / ``val`` / ``test``)."""

    name: str
    refs: tuple[str, ...]
    kjv: tuple[str, ...]
    web: tuple[str, ...]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    split: str = ""
    params: dict = field(default_factory=dict)
    task: str = "pairs"

    def sizes(self) -> tuple[int, int, int]:
        """Verses (classes) per part; each has two sentences."""
        return len(self.train), len(self.val), len(self.test)

    def describe(self) -> str:
        n_train, n_val, n_test = self.sizes()
        return (
            f"{self.name}: {len(self.refs):,} verse pairs, "
            f"{n_train:,} train / {n_val:,} val / {n_test:,} test verses"
        )


def _available() -> bool:
    if not pathlib.Path(SYSTEM_PYTHON).is_file():
        return False
    return all(debian_file(f"usr/share/sword/mods.d/{m}.conf") is not None for m in MODULES)


def _export() -> dict[str, np.ndarray]:
    done = subprocess.run([SYSTEM_PYTHON, "-c", _EXPORT], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            "kjv-web: exporting the SWORD modules failed (needs Debian python3-sword, sword-text-kjv and "
            f"sword-text-web): {done.stderr.strip()[-500:]}"
        )
    refs, kjv, web = [], [], []
    for line in done.stdout.splitlines():
        ref, a, b = json.loads(line)
        a, b = clean_entry(a), clean_entry(b)
        if not a or not b:
            continue
        if max(len(a), len(b)) > 600 or max(len(a), len(b)) > 3 * min(len(a), len(b)):
            continue
        refs.append(ref)
        kjv.append(a)
        web.append(b)
    return {"refs": np.array(refs), "kjv": np.array(kjv), "web": np.array(web)}


def load_kjv_web() -> VersePairs:
    a = cached_arrays("kjv-web-sword-14.3-426.0", _export)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(a["refs"]))
    test, val, train = np.split(order, [N_TEST, N_TEST + N_VAL])
    return VersePairs(
        name="kjv-web",
        refs=tuple(str(r) for r in a["refs"]),
        kjv=tuple(str(s) for s in a["kjv"]),
        web=tuple(str(s) for s in a["web"]),
        train=train,
        val=val,
        test=test,
        split=(
            f"seeded permutation (seed {SPLIT_SEED}) of the verses: {N_TEST:,} test, {N_VAL:,} validation, "
            "the rest training; a verse's two translations stay together"
        ),
    )


register(
    DatasetInfo(
        name="kjv-web",
        task="pairs",
        title="KJV <-> World English Bible verse pairs (paraphrase groups of two)",
        source=(
            "Debian sword-text-kjv 14.3-1 + sword-text-web 426.0-1, read with python3-sword 1.9.0 "
            "(/usr/share/sword)"
        ),
        licence="Public Domain (DistributionLicense of both SWORD modules)",
        citation=(
            "King James Version (1769 text, CrossWire engKJV2006eb); World English Bible (eBible.org, "
            "engWEB2015eb); CrossWire SWORD Project"
        ),
        split="seeded (seed 0): 5,000 test / 1,000 validation / 25,090 training verses",
        shape="31,090 verse pairs (31,095 non-empty; length ratio <= 3, <= 600 chars)",
        loader=load_kjv_web,
        available=_available,
        obtain=(
            "apt-get update && apt-get install -y --no-install-recommends python3-sword sword-text-kjv "
            "sword-text-web",
        ),
    )
)
