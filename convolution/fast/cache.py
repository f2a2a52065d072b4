"""The kernel cache: what a path works out from a kernel, worked out once per kernel.

'auto' plans every path for every call, and a network's layers call with the
same few kernels over and over; so the band matrices, the rank-1 terms, the
taps by phase and the plans are cached, keyed on the kernel's dtype, shape
and bytes and on the other (hashable) arguments they depend on, the settings
among them. One helper does it for all of them (`kernel_cache`). What it
returns is shared by every call: the functions cached make their arrays
read-only.
"""
import functools

import numpy as np

__all__ = ["CACHED_CELLS", "kernel_cache"]

#: Kernels of more cells than this are worked out afresh each call, not cached: the
#: kernel's gradient takes the output's gradient as its kernel, as large as an image
#: and new at every call (its bytes alone would fill the caches).
CACHED_CELLS = 4096


def kernel_cache(maxsize=256):
    """Decorate ``function(kernel, *args)`` so that it runs once per kernel's contents and args.

    ``kernel`` is an ndarray, ``args`` hashable. The function receives a
    read-only copy of the kernel, rebuilt from its bytes.

    >>> @kernel_cache()
    ... def total(kernel, scale):
    ...     print("computed")
    ...     return float(kernel.sum()) * scale
    >>> total(np.ones((2, 2)), 2), total(np.ones((2, 2)), 2)
    computed
    (8.0, 8.0)
    """
    def decorate(function):
        @functools.lru_cache(maxsize=maxsize)
        def cached(dtype, shape, data, *args):
            return function(np.frombuffer(data, dtype=dtype).reshape(shape), *args)

        @functools.wraps(function)
        def wrapper(kernel, *args):
            return cached(kernel.dtype.str, kernel.shape, kernel.tobytes(), *args)

        wrapper.cache_clear = cached.cache_clear
        return wrapper
    return decorate
