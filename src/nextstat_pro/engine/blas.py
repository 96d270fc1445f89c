"""One BLAS thread for the product's own linear algebra next to the engine's.

numpy's and scipy's OpenBLAS start a thread per core for a Cholesky, an inverse or the small
factorisations inside scipy's L-BFGS-B. Right after the engine's own thread pool has run
(tttt-prod's fit), those threads and the engine's wait for each other on this 2-core machine:
a 248 x 248 Cholesky took 0.15-0.35 s instead of 0.5 ms, and an L-BFGS-B minimisation of 7
parameters 0.88 s instead of 2.8 ms (measured, interleaved; with one BLAS thread both are at
the fast figure every time). The matrices here are far too small to gain from threads, so the
product's numerics run with one BLAS thread, restored afterwards for whoever else uses BLAS in
the process (pyhf's reference in engine/crosscheck.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_libraries: list[Any] | None = None
_seen_scipy = False


def _blas() -> list[Any]:
    """The loaded BLAS libraries' controllers; found again once scipy (its own OpenBLAS) is loaded."""
    global _libraries, _seen_scipy
    scipy_loaded = "scipy.optimize" in sys.modules or "scipy.linalg" in sys.modules
    if _libraries is None or (scipy_loaded and not _seen_scipy):
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _libraries = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        _seen_scipy = scipy_loaded
    return _libraries


@contextmanager
def one_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block (a few microseconds to enter and leave)."""
    libraries = _blas()
    previous = [lib.get_num_threads() for lib in libraries]
    for lib, n in zip(libraries, previous, strict=True):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libraries, previous, strict=True):
            if n != 1:
                lib.set_num_threads(n)
