"""Strip planning: the output cut into strips of a few MiB, and the threads that share them.

A fast path tells `plan` what one strip of output rows costs (`Work`: bytes
of buffers per row, NumPy calls per strip, estimated time per row); `plan`
cuts the output into strips of at most ``Settings.strip_bytes`` and decides
how many threads share them.

Threads follow from the length of the calls, not from a per-path constant
(`wall_ns`). A NumPy call holds the GIL while Python sets it up
(``Settings.call_ns``), then releases it for its loop. With several threads,
every call must also win the GIL back from the others: when they contend for
it, one thread has to wake another (``Settings.handoff_ns``). So ``n`` threads
that make ``calls`` calls between them take at least ``calls * (call_ns +
handoff_ns)``, whatever ``n`` is: threads pay only when each call's loop is
long against that. A path made of hundreds of short calls (the tap loops, on
small strips) stays on one thread; one made of few long calls that release
the GIL (a matrix product, a large FFT) shares the cores. And no thread is
taken for less than ``Settings.thread_ns`` of work: a thread that starts on a
strip finds its caches cold (measured here: jobs of 1 to 3 ms ran 20 to 35%
slower on two threads than on one, jobs of 4 ms and more 20 to 40% faster).

Memory: strips are also kept to 1/threads of the output's size, so that all
threads' buffers together stay within the output's size (the promise made in
conv2d's docstring: memory beyond input and output at most 3x the output),
but never below ``Settings.min_strip_bytes``: on small images it is the fixed
costs that matter. Fewer threads are used rather than smaller strips.
"""
import math
from typing import NamedTuple

from .. import settings as _settings
from .pool import threads

__all__ = ["Work", "Plan", "wall_ns", "plan", "plan_tasks"]


class Work(NamedTuple):
    """What one strip of a path costs, as the path tells `plan`.

    ``row_bytes``: buffer bytes per output row of a strip. ``extra_rows``:
    buffer rows a strip holds beyond its own (the kernel's reach below it).
    ``row_ns``: estimated time per output row of one image, one thread.
    ``calls``: NumPy calls per strip, and ``row_calls`` more per output row.
    ``fixed_ns``: time per call of the path outside its strips.
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
    ``settings``: the settings it was made with, which its run reads too
    (None: those in force when it runs).
    """
    tasks: list
    threads: int
    ns: float
    detail: object = None
    settings: object = None


def wall_ns(work_ns, calls, threads, s=None):
    """Estimated time of ``work_ns`` of loops made by ``calls`` NumPy calls on ``threads`` threads.

    One thread: the loops plus Python's share of each call. Several: each
    call also waits for the GIL (``handoff_ns``), and the GIL serves one call
    at a time, so the time is at least the calls' serial part however many
    threads share them.
    """
    s = s or _settings.current()
    if threads <= 1:
        return work_ns + calls * s.call_ns
    serial = calls * (s.call_ns + s.handoff_ns)
    return max((work_ns + serial) / threads, serial)


def _candidates(most):
    """Thread counts worth comparing: 1, 2, 3, 4, 6, 8, 12, 16, ... up to ``most``."""
    counts, n = [1], 2
    while n < most:
        counts += [n, n + n // 2] if n >= 2 else [n]
        n *= 2
    return sorted({c for c in counts if c < most} | {most})


def _best(estimates, s):
    """Of options ``(threads, ns, ...)`` (one thread first), the one to take.

    One thread, unless some option saves ``thread_gain`` of its time (the
    model's estimates are good to about a fifth); then the fewest threads
    within 5% of the fastest option.
    """
    options = list(estimates)
    fastest = min(options, key=lambda option: option[1])
    if fastest[1] > (1 - s.thread_gain) * options[0][1]:
        return options[0]
    return next(option for option in options if option[1] <= 1.05 * fastest[1])


def _worth(work_ns, s):
    """The threads ``work_ns`` of work is worth: one per ``thread_ns`` of it, at least one."""
    if s.thread_ns <= 0:
        return 2 ** 31
    return max(1, int(work_ns // s.thread_ns))


def plan_tasks(tasks, work_ns, calls_per_task, fixed_ns=0.0, s=None):
    """A `Plan` for tasks already cut: how many threads share them.

    ``work_ns`` is the estimated time of all their loops on one thread.
    """
    s = s or _settings.current()
    most = min(threads(), len(tasks), _worth(work_ns, s))
    n, ns = _best(((n, wall_ns(work_ns, len(tasks) * calls_per_task, n, s))
                   for n in _candidates(most)), s)
    return Plan(tasks, n, ns + fixed_ns, settings=s)


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


def plan(batch, rows, out_bytes, work, s=None):
    """Cut ``batch`` images of ``rows`` output rows into strips, and choose the threads.

    Returns a `Plan`. Each candidate thread count ``n`` gets strips of at
    most ``min(strip_bytes, out_bytes / n)`` bytes (so that all threads'
    buffers together stay within the output's size), as many as a multiple
    of ``n``, so that the threads end together; the one estimated fastest
    by `wall_ns` wins. No more threads than strips of ``min_strip_bytes``
    fit in the output.
    """
    s = s or _settings.current()
    work_ns = batch * rows * work.row_ns
    most = max(1, min(threads(), out_bytes // s.min_strip_bytes, _worth(work_ns, s)))

    def estimate(n):
        budget = max(min(s.strip_bytes, out_bytes // n), s.min_strip_bytes)
        tasks = _cut(batch, rows, work, budget, n)
        n = min(n, len(tasks))
        calls = len(tasks) * work.calls + batch * rows * work.row_calls
        return n, wall_ns(work_ns, calls, n, s), tasks

    n, ns, tasks = _best((estimate(n) for n in _candidates(most)), s)
    return Plan(tasks, n, ns + work.fixed_ns, settings=s)
