"""The threads: how many a call may use, the shared pool, and running a plan's tasks on it.

Who owns the cores: this driver. The number of threads a call takes comes
from its work (``strips.plan``): never more than `threads`, which is never
more than the cores this process may run on, and one where sharing would not
pay. The calling thread works too, beside threads of one shared pool.
"""
import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import settings
from .arena import Arena

__all__ = ["cores", "threads", "limit_threads", "pool", "pool_size", "report_progress", "run"]


def cores():
    """The cores the driver may use: ``Settings.cores``, else this process's CPU affinity."""
    chosen = settings.current().cores
    if chosen is not None:
        return chosen
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_limit = threading.local()


def threads():
    """The most threads a call may use: the cores, fewer if asked.

    ``Settings.threads``, else ``$CONVOLUTION_THREADS``, and a `limit_threads`
    block around the call lower it; nothing raises it above `cores`. How many
    of these a call takes comes from its work, not from what else the machine
    is doing at the moment: the same call plans the same way every time.
    """
    count = cores()
    asked = settings.current().threads
    if asked is None:
        value = os.environ.get("CONVOLUTION_THREADS")
        if value is not None:
            try:
                asked = int(value)
            except ValueError:
                asked = 0
            if asked < 1:
                raise ValueError(f"CONVOLUTION_THREADS must be a positive integer, got {value!r}")
    if asked is not None:
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


_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def pool(workers):
    """The shared thread pool, grown to ``workers`` threads; a pool replaced is shut down."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(
                workers, thread_name_prefix="convolution"), workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def pool_size():
    """The threads of the shared pool now (0: none started)."""
    return _pool_size


def shutdown_pool():
    """Shut the shared pool down and wait for its threads; the next call starts a new one."""
    global _pool, _pool_size
    with _pool_lock:
        old, _pool, _pool_size = _pool, None, 0
    if old is not None:
        old.shutdown(wait=True)


#: The function `report_progress` installed in this thread's context, or None.
_progress = contextvars.ContextVar("convolution_progress", default=None)


@contextlib.contextmanager
def report_progress(progress):
    """Within the block, `run` calls ``progress(done, total)`` as the strips of this thread finish.

    ``total`` is the strips of one `run` (one convolution: a call of a fast
    path; a filtered picture with alpha makes a few), ``done`` those
    finished, from ``(0, total)`` on. The calls come from the thread that
    finished the strip, one at a time (the command line's tqdm bar takes
    about a microsecond a call, on strips of up to ``Settings.strip_bytes``).
    Other threads' convolutions (Dask's workers) are not reported.
    """
    token = _progress.set(progress)
    try:
        yield
    finally:
        _progress.reset(token)


def run(work, plan):
    """Run ``work(arena, *task)`` for every task of ``plan`` (a ``strips.Plan``).

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
    keep_bytes = (plan.settings or settings.current()).keep_bytes

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
                Arena.finish(keep_bytes)
            if progress is not None:
                with lock:
                    done[0] += 1
                    progress(done[0], len(plan.tasks))

    helpers = min(plan.threads, len(plan.tasks)) - 1
    futures = []
    if helpers > 0:
        shared = pool(helpers)
        try:
            for _ in range(helpers):
                futures.append(shared.submit(worker))
        except RuntimeError:    # "cannot schedule new futures after interpreter shutdown"
            pass
    try:
        worker()
    finally:
        for future in futures:
            future.result()      # waits, and raises what a helper raised


def _after_fork_in_child():
    """A child of os.fork() has only the forking thread: forget the pool and its lock.

    The pool's threads do not exist in the child; a task given to them
    would wait forever. The next call that wants threads starts a new pool.
    """
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size = None, 0
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
