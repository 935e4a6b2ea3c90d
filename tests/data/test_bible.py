"""KJV <-> WEB verse pairs against data.md section 6 (needs Debian python3-sword and the two modules)."""

from __future__ import annotations

import numpy as np

from logitkit.data.bible import clean_entry
from tests.data.test_loaders import need


def test_clean_entry_drops_notes_tags_and_pilcrows():
    raw = '\u00b6 <w lemma="strong:H0430">God</w><note placement="foot">Elohim</note><w>created</w> , all .'
    assert clean_entry(raw) == "God created, all."


def test_kjv_web_pairs_match_published_counts():
    ds = need("kjv-web")
    assert len(ds.refs) == 31_090 and len(set(ds.refs)) == 31_090
    assert ds.sizes() == (25_090, 1_000, 5_000)
    parts = np.concatenate([ds.train, ds.val, ds.test])
    assert sorted(parts.tolist()) == list(range(31_090))  # a partition of the verses
    i = ds.refs.index("Gen.1.1")
    assert ds.kjv[i] == "In the beginning God created the heaven and the earth."
    assert ds.web[i] == "In the beginning, God created the heavens and the earth."
    # Rev 22:21 is dropped: the WEB entry has the glossary appended (over 600 characters).
    assert ds.refs[0] == "Gen.1.1" and ds.refs[-1] == "Rev.22.20"
    assert all("<" not in s and "\u00b6" not in s for s in ds.kjv[:2000] + ds.web[:2000])
