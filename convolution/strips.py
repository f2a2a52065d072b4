"""Strips, threads and scratch memory: the driver every fast path runs on.

A fast path tells the driver what one strip of output rows costs (`Work`:
bytes of buffers per row, NumPy calls per strip, estimated time per row);
`plan` cuts the output into strips of at most `STRIP_BYTES` and decides how
many threads share them; `run` carries them out, each strip with its
thread's `Arena` of scratch memory, and reports each strip finished to the
function of `report_progress`, if any (the command line's progress bar).

Who owns the cores: this driver. The number of threads comes from the work
(`costs.wall_ns`): never more than the cores this process may run on, one
where sharing would not pay. Inside a path that multiplies matrices, BLAS
runs on the calling thread only (`single_threaded_blas`): its own threads,
woken for each of many small products, would fight ours for the same cores.

Settings are module attributes, read at every call: changing
``strips.STRIP_BYTES`` takes effect at the next call. ``CONVOLUTION_THREADS``
in the environment, also read at every call, caps the threads.
"""
import contextlib
import contextvars
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import costs

__all__ = ["STRIP_BYTES", "MIN_STRIP_BYTES", "KEEP_BYTES", "THREAD_GAIN", "Arena", "Plan",
           "Work", "cores", "limit_threads", "plan", "plan_tasks", "run",
           "report_progress", "single_threaded_blas", "threads"]

#: Bytes of working memory (all buffers together) of one strip, at most.
STRIP_BYTES = 2 * 2 ** 20
#: Strips are also kept to 1/threads of the output's size, so that all
#: threads' buffers together stay within the output's size (the promise
#: made in conv2d's docstring: memory beyond input and output at most 3x the
#: output), but never below this: on small images it is the fixed costs
#: that matter. Fewer threads are used rather than smaller strips.
MIN_STRIP_BYTES = 2 ** 18
#: A thread keeps its strips' memory between calls up to this many bytes (a
#: strip and a matrix product's rows of the largest kind), and gives back more.
KEEP_BYTES = 8 * 2 ** 20


def cores():
    """The number of cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_limit = threading.local()


def threads():
    """The most threads a call may use: the cores, fewer if asked.

    ``$CONVOLUTION_THREADS`` and a `limit_threads` block around the call
    lower it; nothing raises it above `cores`. How many of these a call
    takes comes from its work (`plan`), not from what else the machine is
    doing at the moment: the same call plans the same way every time.
    """
    count = cores()
    value = os.environ.get("CONVOLUTION_THREADS")
    if value is not None:
        try:
            asked = int(value)
        except ValueError:
            asked = 0
        if asked < 1:
            raise ValueError(f"CONVOLUTION_THREADS must be a positive integer, got {value!r}")
        count = min(count, asked)
    limit = getattr(_limit, "threads", None)
    if limit is not None:
        count = max(1, min(count, limit))
    return count


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


class Work(NamedTuple):
    """What one strip of a path costs, as the path tells `plan`.

    ``row_bytes``: buffer bytes per output row of a strip. ``extra_rows``:
    buffer rows a strip holds beyond its own (the kernel's reach below it).
    ``row_ns``: estimated time per output row of one image (`costs`), one
    thread. ``calls``: NumPy calls per strip, and ``row_calls`` more per
    output row. ``fixed_ns``: time per call of the path outside its strips.
    ``rows_multiple``: strips are whole multiples of this many rows, but for
    the image's last one.
    """
    row_bytes: int
    extra_rows: int
    row_ns: float
    calls: int
    fixed_ns: float = 0.0
    rows_multiple: int = 1
    row_calls: float = 0.0


class Plan(NamedTuple):
    """Tasks (``(batch slice, row slice, ...)`` each), the threads that share them, the estimate.

    ``detail``: whatever else the path chose with the plan, for it to run by.
    """
    tasks: list
    threads: int
    ns: float
    detail: object = None


def _candidates(most):
    """Thread counts worth comparing: 1, 2, 3, 4, 6, 8, 12, 16, ... up to ``most``."""
    counts, n = [1], 2
    while n < most:
        counts += [n, n + n // 2] if n >= 2 else [n]
        n *= 2
    return sorted({c for c in counts if c < most} | {most})


#: Threads are taken only where the estimate says they save this much of the
#: time one thread takes: the model's estimates are good to about a fifth.
THREAD_GAIN = 0.25


def _best(estimates):
    """Of options ``(threads, ns, ...)`` (one thread first), the one to take.

    One thread, unless some option saves `THREAD_GAIN` of its time; then the
    fewest threads within 5% of the fastest option.
    """
    options = list(estimates)
    fastest = min(options, key=lambda option: option[1])
    if fastest[1] > (1 - THREAD_GAIN) * options[0][1]:
        return options[0]
    return next(option for option in options if option[1] <= 1.05 * fastest[1])


def _worth(work_ns):
    """The threads ``work_ns`` of work is worth: one per `costs.THREAD_NS` of it, at least one."""
    if costs.THREAD_NS <= 0:
        return 2 ** 31
    return max(1, int(work_ns // costs.THREAD_NS))


def plan_tasks(tasks, work_ns, calls_per_task, fixed_ns=0.0):
    """A `Plan` for tasks already cut: how many threads share them.

    ``work_ns`` is the estimated time of all their loops on one thread.
    """
    most = min(threads(), len(tasks), _worth(work_ns))
    n, ns = _best((n, costs.wall_ns(work_ns, len(tasks) * calls_per_task, n))
                  for n in _candidates(most))
    return Plan(tasks, n, ns + fixed_ns)


def _cut(batch, rows, work, budget, workers):
    """(batch slice, row slice) tasks of at most ``budget`` bytes, a multiple of ``workers``."""
    per_image = (rows + work.extra_rows) * work.row_bytes
    tasks = math.ceil(math.ceil(batch * per_image / budget) / workers) * workers
    if tasks <= batch:      # whole images, several to a task
        step = math.ceil(batch / tasks)
        return [(slice(n, min(n + step, batch)), slice(0, rows)) for n in range(0, batch, step)]
    # Strips at least twice as tall as the rows they share with the next one.
    step = max(math.ceil(rows / math.ceil(tasks / batch)), min(2 * work.extra_rows, rows))
    step = min(-(-step // work.rows_multiple) * work.rows_multiple, rows)
    return [(slice(n, n + 1), slice(i, min(i + step, rows)))
            for n in range(batch) for i in range(0, rows, step)]


def plan(batch, rows, out_bytes, work):
    """Cut ``batch`` images of ``rows`` output rows into strips, and choose the threads.

    Returns a `Plan`. Each candidate thread count ``n`` gets strips of at
    most ``min(STRIP_BYTES, out_bytes / n)`` bytes (so that all threads'
    buffers together stay within the output's size), as many as a multiple
    of ``n``, so that the threads end together; the one estimated fastest
    by `costs.wall_ns` wins. No more threads than strips of
    `MIN_STRIP_BYTES` fit in the output.
    """
    most = max(1, min(threads(), out_bytes // MIN_STRIP_BYTES,
                      _worth(batch * rows * work.row_ns)))
    work_ns = batch * rows * work.row_ns

    def estimate(n):
        budget = max(min(STRIP_BYTES, out_bytes // n), MIN_STRIP_BYTES)
        tasks = _cut(batch, rows, work, budget, n)
        n = min(n, len(tasks))
        calls = len(tasks) * work.calls + batch * rows * work.row_calls
        return n, costs.wall_ns(work_ns, calls, n), tasks

    n, ns, tasks = _best(estimate(n) for n in _candidates(most))
    return Plan(tasks, n, ns + work.fixed_ns)


class Arena:
    """Scratch memory of one thread, reused from strip to strip and from call to call.

    Allocating a few MiB of buffers for every strip, or even every call,
    means touching fresh pages, and each first touch is a page fault: in a
    program that does anything else between convolutions, that was a third
    of the time of a 1024 x 1024 call, measured. So each thread carves its
    strips' buffers out of one block that it keeps: about one strip's worth
    per thread, given back when a strip needed more than `KEEP_BYTES`.
    """
    _local = threading.local()

    def __init__(self):
        self.memory = np.empty(0, np.uint8)
        self.address = self.memory.ctypes.data     # where the block starts, for alignment
        self.used = self.wanted = 0   # bytes handed out from the block; bytes asked for

    @classmethod
    def start(cls):
        """The calling thread's arena, emptied for a new strip.

        As large as the last strip wanted, for callers that start strip after
        strip without `finish` between them.
        """
        arena = getattr(cls._local, "arena", None)
        if arena is None:
            arena = cls._local.arena = cls()
        arena._grow()
        arena.used = arena.wanted = 0
        return arena

    def _grow(self):
        """The block as large as the last strip wanted, if it was smaller."""
        if self.wanted > self.memory.nbytes:
            self.memory = np.empty(0, np.uint8)      # let go before taking more
            self.memory = np.empty(self.wanted, np.uint8)
            self.address = self.memory.ctypes.data

    @classmethod
    def finish(cls):
        """After a strip: grow the block to what it wanted, or drop it beyond `KEEP_BYTES`.

        Growing here, once the strip's own arrays are gone, rather than when
        the next strip starts: a strip of a later call, which may want less,
        then does not pay for this one.
        """
        arena = getattr(cls._local, "arena", None)
        if arena is None:
            return
        if max(arena.memory.nbytes, arena.wanted) > KEEP_BYTES:
            cls._local.arena = None
        else:
            arena._grow()

    def take(self, shape, dtype):
        """An uninitialised C-contiguous array, valid until the next `start`."""
        dtype = np.dtype(dtype)
        size = -(-math.prod(shape) * dtype.itemsize // 64) * 64   # keeps every start aligned
        self.wanted += size + 64 * (self.wanted == 0)   # room to align the block's start
        begin = self.used + (-(self.address + self.used) % 64)
        if begin + size > self.memory.nbytes:   # too small: a block of its own this time
            return np.empty(shape, dtype)
        self.used = begin + size
        return self.memory[begin:begin + math.prod(shape) * dtype.itemsize].view(
            dtype).reshape(shape)


_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def _get_pool(workers):
    """The shared thread pool, grown to ``workers`` threads; a pool replaced is shut down."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(
                workers, thread_name_prefix="convolution"), workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


#: The function `report_progress` installed in this thread's context, or None.
_progress = contextvars.ContextVar("convolution_progress", default=None)


@contextlib.contextmanager
def report_progress(progress):
    """Within the block, `run` calls ``progress(done, total)`` as the strips of this thread finish.

    ``total`` is the strips of one `run` (one convolution: a call of a fast
    path; a filtered picture with alpha makes a few), ``done`` those
    finished, from ``(0, total)`` on. The calls come from the thread that
    finished the strip, one at a time (the command line's tqdm bar takes
    about a microsecond a call, on strips of up to `STRIP_BYTES`). Other
    threads' convolutions (Dask's workers) are not reported.
    """
    token = _progress.set(progress)
    try:
        yield
    finally:
        _progress.reset(token)


def run(work, plan):
    """Run ``work(arena, *task)`` for every task of ``plan`` (a `Plan`).

    With several threads, the calling thread works too, beside
    ``plan.threads - 1`` threads of the pool; each takes the next task
    until none is left. Where the pool cannot take work (during interpreter
    shutdown, from an ``atexit`` handler), the calling thread does it all.
    Progress goes to the function of `report_progress`, if any.
    """
    tasks = iter(plan.tasks)
    lock = threading.Lock()
    failed = []
    progress, done = _progress.get(), [0]
    if progress is not None:
        progress(0, len(plan.tasks))

    def worker():
        while not failed:
            with lock:
                task = next(tasks, None)
            if task is None:
                return
            try:
                work(Arena.start(), *task)
            except BaseException:
                failed.append(True)
                raise
            finally:
                Arena.finish()
            if progress is not None:
                with lock:
                    done[0] += 1
                    progress(done[0], len(plan.tasks))

    helpers = min(plan.threads, len(plan.tasks)) - 1
    futures = []
    if helpers > 0:
        pool = _get_pool(helpers)
        try:
            for _ in range(helpers):
                futures.append(pool.submit(worker))
        except RuntimeError:    # "cannot schedule new futures after interpreter shutdown"
            pass
    try:
        worker()
    finally:
        for future in futures:
            future.result()      # waits, and raises what a helper raised


_blas = None
_blas_users = 0
_blas_saved = []
_blas_lock = threading.Lock()


def _blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded (found once), or ()."""
    global _blas
    if _blas is None:
        try:
            import threadpoolctl
        except ImportError:
            _blas = ()
        else:
            _blas = tuple(threadpoolctl.ThreadpoolController().select(
                user_api="blas").lib_controllers)
    return _blas


def _set_blas_threads(saved, single):
    """Every BLAS of ``saved`` ((controller, count) pairs) to one thread, or back to its count.

    threadpoolctl lets only one thread at a time change a process-wide
    OpenBLAS setting, the first to try, until it lets go; the threads of a
    conv2d call take turns, so each lets go at once.
    """
    for lib, count in saved:
        if count != 1:
            lib.set_num_threads(1 if single else count)
            let_go = getattr(type(lib), "clear_controlling_thread", None)
            if let_go is not None:
                let_go(force=True)


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, BLAS runs each matrix product on the calling thread only.

    The driver's threads own the cores; a BLAS that woke its own threads for
    each of the many small products a path makes would fight them for the
    same cores. The setting is process-wide, as BLAS libraries keep it: the
    first block to start sets every BLAS to one thread, the last one to end
    (on whatever thread) puts back what was there. Costs a few
    microseconds; does nothing without threadpoolctl.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = [(lib, lib.num_threads) for lib in _blas_libraries()]
            _set_blas_threads(_blas_saved, single=True)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _set_blas_threads(_blas_saved, single=False)


def _after_fork_in_child():
    """A child of os.fork() has only the forking thread: forget the pool and the locks.

    The pool's threads do not exist in the child; a task given to them
    would wait forever. The next call that wants threads starts a new pool.
    """
    global _pool, _pool_size, _pool_lock, _blas_lock, _blas_users
    _pool, _pool_size = None, 0
    _pool_lock = threading.Lock()
    _blas_lock = threading.Lock()
    if _blas_users:      # another thread of the parent was inside single_threaded_blas
        _set_blas_threads(_blas_saved, single=False)
        _blas_users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
