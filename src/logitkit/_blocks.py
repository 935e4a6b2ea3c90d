"""Cache-sized blocks for the fused kernels.

On CPU, a large temporary costs more than the arithmetic done on it: freshly allocated memory is
written at a few GB/s (page faults), so one fresh ``(1024, 32000)`` float32 temporary costs tens of
milliseconds. The fused losses therefore walk the logits in blocks that stay cache-resident and
allocate only their outputs (the loss and, in backward, the gradient).

Logits are viewed as ``(N, C, S)`` (``S`` = product of the trailing dims, 1 for 2-D input) and
reduced over ``C``; a block is a slice ``[n0:n1, :, s0:s1]``.
"""

from __future__ import annotations

from collections.abc import Iterator

# Bytes of float32 working set per block. Swept on the 2-core development CPU (2 MiB L2 per core,
# 32 MiB shared L3) from 128 KiB to 8 MiB on the cross-entropy benchmarks: index targets are flat
# from 1 to 8 MiB; probability targets, with several per-block temporaries, are 2x slower at
# 4 MiB than at 1 MiB (out of L2); below 512 KiB per-block Python overhead shows at C = 1000.
BLOCK_BYTES = 1 << 20


def blocks(n: int, c: int, s: int, *, block_bytes: int | None = None) -> Iterator[tuple[slice, slice | int]]:
    """Yield ``(rows, cols)`` indices covering an ``(n, s)`` grid of length-``c`` class vectors.

    For ``s == 1`` the column index is the integer 0, so that ``x[rows, :, cols]`` is a 2-D
    ``(rows, C)`` block: the native kernels are much slower on a ``(rows, C, 1)`` view, where the
    class dim is not the last one.
    """
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    per_vector = max(c, 1) * 4
    vectors = max(1, block_bytes // per_vector)
    if s == 1:
        for n0 in range(0, n, vectors):
            yield slice(n0, min(n, n0 + vectors)), 0
    elif s <= vectors:
        rows = max(1, vectors // s)
        for n0 in range(0, n, rows):
            yield slice(n0, min(n, n0 + rows)), slice(0, s)
    else:
        for n0 in range(n):
            for s0 in range(0, s, vectors):
                yield slice(n0, n0 + 1), slice(s0, min(s, s0 + vectors))
