"""Read R data without R: ``.rda`` files and lazy-load databases (``Rdata.rdx`` / ``Rdata.rdb``).

Uses the PyPI package ``rdata`` (parser + converter to pandas). A lazy-load database is an index
(``.rdx``: gzip-compressed R serialization whose ``variables`` entry maps each object name to an
(offset, length) pair) into a blob file (``.rdb``). Each blob is a 4-byte big-endian length, then a
type byte (``Z`` raw LZMA2, ``2`` bzip2, ``0`` uncompressed); any other byte means the bytes after the
length are one zlib stream.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pathlib
import warnings
import zlib


def _rdata():
    try:
        import rdata
    except ImportError:  # pragma: no cover - the experiments extra installs it
        raise ImportError(
            'reading R data needs the experiments extra: pip install "logitkit[experiments]"'
        ) from None
    return rdata


def _convert(parsed):
    rdata = _rdata()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown encoding. Assumed ASCII." on old files
        return rdata.conversion.convert(parsed)


def read_rda(path: pathlib.Path) -> dict:
    """Objects of an ``.rda`` file as a dict name -> pandas object."""
    rdata = _rdata()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdata.read_rda(str(path))


def _blob(raw: bytes) -> bytes:
    kind = raw[4:5]
    if kind == b"Z":
        filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        return lzma.decompress(raw[5:], format=lzma.FORMAT_RAW, filters=filters)
    if kind == b"2":
        return bz2.decompress(raw[5:])
    if kind == b"0":
        return raw[5:]
    return zlib.decompress(raw[4:])


def read_lazyload(base: pathlib.Path, name: str):
    """Object ``name`` of the lazy-load database ``base`` (``.../data/Rdata`` without extension)."""
    rdata = _rdata()
    base = pathlib.Path(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = _convert(rdata.parser.parse_data(gzip.decompress(base.with_suffix(".rdx").read_bytes())))
    variables = {str(k): v for k, v in index["variables"].items()}
    if name not in variables:
        raise KeyError(f"name: expected one of {sorted(variables)}, got {name!r}")
    offset, length = (int(v) for v in variables[name])
    with open(base.with_suffix(".rdb"), "rb") as handle:
        handle.seek(offset)
        raw = handle.read(length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _convert(rdata.parser.parse_data(_blob(raw)))
