"""BLAS control: matrix products on the calling thread only, while the driver's threads work.

The driver's threads own the cores. Inside a path that multiplies matrices,
a BLAS that woke its own threads for each of many small products would fight
them for the same cores (measured: 820 ms instead of 52 for the benchmark's
layer with OpenBLAS on two threads). So `single_threaded_blas` sets every
BLAS to one thread for the time a path runs, through threadpoolctl where it
is installed; without it, nothing is changed.
"""
import contextlib
import os
import threading

__all__ = ["libraries", "single_threaded_blas"]

_found = None
_users = 0
_saved = []
_lock = threading.Lock()


def libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded (found once), or ()."""
    global _found
    if _found is None:
        try:
            import threadpoolctl
        except ImportError:
            _found = ()
        else:
            _found = tuple(threadpoolctl.ThreadpoolController().select(
                user_api="blas").lib_controllers)
    return _found


def _set_threads(saved, single):
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
def single_threaded_blas(enabled=True):
    """Within the block, BLAS runs each matrix product on the calling thread only.

    The setting is process-wide, as BLAS libraries keep it: the first block
    to start sets every BLAS to one thread, the last one to end (on whatever
    thread) puts back what was there. Costs a few microseconds; does nothing
    without threadpoolctl, or with ``enabled`` false (``Settings.limit_blas``).
    """
    global _users, _saved
    if not enabled:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = [(lib, lib.num_threads) for lib in libraries()]
            _set_threads(_saved, single=True)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _set_threads(_saved, single=False)


def _after_fork_in_child():
    """A child of os.fork() has only the forking thread: a fresh lock, BLAS put back."""
    global _lock, _users
    _lock = threading.Lock()
    if _users:      # another thread of the parent was inside single_threaded_blas
        _set_threads(_saved, single=False)
        _users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
