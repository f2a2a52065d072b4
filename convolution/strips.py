"""Strips, threads and scratch memory: the driver every fast path runs on.

A fast path says what one strip of output rows (or one tile) costs in
buffers; `plan` cuts the output into tasks of a few MiB each, as many as
there are threads or a multiple of it when the work is large enough to
share; `run` carries them out, on a thread pool when the plan says so, each
task with its thread's `Arena` of scratch memory.
"""
import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["STRIP_BYTES", "MIN_STRIP_BYTES", "PARALLEL_BYTES", "Arena", "limit_threads", "plan",
           "run", "threads"]

#: Bytes of working memory (all buffers together) of one strip. Measured on
#: the benchmark's machine, strips of a few MiB beat strips sized for the L2
#: cache: each NumPy call costs a few microseconds of Python and of passing
#: the GIL between threads, which long calls hide and short ones do not.
STRIP_BYTES = int(os.environ.get("CONVOLUTION_STRIP_BYTES", 4 * 2 ** 20))
#: Strips are also kept to 1/threads of the output's size, so that all threads'
#: buffers together stay within the output's size (the promise made in the
#: README: memory beyond input and output at most 3x the output), but never
#: below this: on small images it is the fixed costs that matter.
MIN_STRIP_BYTES = int(os.environ.get("CONVOLUTION_MIN_STRIP_BYTES", 2 ** 18))
#: Work below this many bytes of buffers runs on one thread: waking another
#: costs more than it would save.
PARALLEL_BYTES = int(os.environ.get("CONVOLUTION_PARALLEL_BYTES", 4 * 2 ** 20))

_pool = None
_pool_lock = threading.Lock()
_limit = threading.local()


def threads():
    """Worker threads: $CONVOLUTION_THREADS, else the cores this process may use.

    Never more than a `limit_threads` block around the call allows.
    """
    if "CONVOLUTION_THREADS" in os.environ:
        count = max(1, int(os.environ["CONVOLUTION_THREADS"]))
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    limit = getattr(_limit, "threads", None)
    return count if limit is None else min(count, limit)


@contextlib.contextmanager
def limit_threads(n):
    """Within the block, convolutions called from this thread use at most ``n`` threads.

    For callers that own the cores themselves (a Dask worker, a process pool):
    each of their tasks then runs on its own thread. Blocks nest; the
    smallest limit holds.

    Examples
    --------
    >>> with limit_threads(1):
    ...     threads()
    1
    """
    previous = getattr(_limit, "threads", None)
    _limit.threads = n if previous is None else min(n, previous)
    try:
        yield
    finally:
        _limit.threads = previous


class Arena:
    """Scratch memory of one thread, reused from strip to strip and from call to call.

    Allocating a few MiB of buffers for every strip, or even every call,
    means touching fresh pages, and each first touch is a page fault: in a
    program that does anything else between convolutions, that was a third
    of the time of a 1024 x 1024 call, measured. So each thread carves its
    strips' buffers out of one block that it keeps: about one strip's worth
    (a few MiB) per thread, given back when a strip needed more than
    `KEEP_BYTES`.
    """
    _local = threading.local()
    KEEP_BYTES = 2 * STRIP_BYTES

    def __init__(self):
        self.memory = np.empty(0, np.uint8)
        self.used = self.wanted = 0   # bytes handed out from the block; bytes asked for

    @classmethod
    def start(cls):
        """The calling thread's arena, emptied for a new strip, as large as the last one wanted."""
        arena = getattr(cls._local, "arena", None)
        if arena is None:
            arena = cls._local.arena = cls()
        if arena.wanted > arena.memory.nbytes:
            arena.memory = np.empty(0, np.uint8)      # let go before taking more
            arena.memory = np.empty(arena.wanted, np.uint8)
        arena.used = arena.wanted = 0
        return arena

    @classmethod
    def finish(cls):
        """After a strip: give back a block that grew beyond `KEEP_BYTES`."""
        arena = getattr(cls._local, "arena", None)
        if arena is not None and max(arena.memory.nbytes, arena.wanted) > cls.KEEP_BYTES:
            cls._local.arena = None

    def take(self, shape, dtype):
        """An uninitialised C-contiguous array, valid until the next `start`."""
        dtype = np.dtype(dtype)
        size = -(-math.prod(shape) * dtype.itemsize // 64) * 64   # keeps every start aligned
        self.wanted += size + 64 * (self.wanted == 0)   # room to align the block's start
        begin = self.used + (-(self.memory.ctypes.data + self.used) % 64)
        if begin + size > self.memory.nbytes:   # too small: a block of its own this time
            return np.empty(shape, dtype)
        self.used = begin + size
        return self.memory[begin:begin + math.prod(shape) * dtype.itemsize].view(
            dtype).reshape(shape)


def run(work, plan):
    """Run ``work(arena, *task)`` for every task of ``plan`` (from `plan`).

    On the thread pool when the plan has several workers.
    """
    global _pool
    tasks, workers = plan
    workers = min(workers, len(tasks))

    def call(task):
        try:
            work(Arena.start(), *task)
        finally:
            Arena.finish()

    if workers == 1:
        for task in tasks:
            call(task)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="convolution")
    for _ in _pool.map(call, tasks):
        pass


def plan(out, rows, row_bytes, extra_rows=0, tile_rows=None):
    """Cut (batch, output rows) of ``out`` into tasks of a few MiB of buffers each.

    Returns ``(tasks, workers)``: a list of ``(batch slice, row slice)`` and
    the number of threads to share them.

    ``row_bytes`` is what one row of a strip's buffers costs; a strip of R
    output rows holds ``R + extra_rows`` rows (the kernel's reach below the
    strip), so strips are kept at least twice as tall as that overlap. The
    number of tasks is a multiple of the number of threads, so that they end
    together, unless the work is too small to share. The FFT passes
    ``tile_rows``, the rows of its tiles, which strips then never exceed.
    """
    batch = out.shape[0]
    per_image = (rows + extra_rows) * row_bytes
    workers = threads() if batch * per_image >= PARALLEL_BYTES else 1
    budget = min(STRIP_BYTES, max(out.nbytes // workers, MIN_STRIP_BYTES))
    tasks = math.ceil(math.ceil(batch * per_image / budget) / workers) * workers
    if tile_rows is not None and rows > tile_rows:
        step = tile_rows
    elif tasks <= batch:      # whole images, several to a task
        step = math.ceil(batch / tasks)
        return [(slice(n, min(n + step, batch)), slice(0, rows))
                for n in range(0, batch, step)], workers
    elif tile_rows is not None:
        step = rows
    else:
        step = max(math.ceil(rows / math.ceil(tasks / batch)), min(2 * extra_rows, rows))
    return [(slice(n, n + 1), slice(i, min(i + step, rows)))
            for n in range(batch) for i in range(0, rows, step)], workers
