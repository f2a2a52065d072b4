"""The driver every fast path runs on: strips of output, threads, scratch memory, BLAS.

A fast path tells the driver what one strip of output rows costs (`Work`);
`plan` cuts the output into strips and decides how many threads share them
(``strips.py``); `run` carries them out on the thread pool (``pool.py``),
each strip with its thread's scratch memory (``arena.py``), while BLAS keeps
to the calling thread where a path asks (``blas.py``). Every tuning value
comes from ``settings.py``, read once per call and carried by the plan.
"""
from .arena import Arena, release_arena
from .blas import single_threaded_blas
from .strips import Plan, Work, plan, plan_tasks, wall_ns
from .pool import cores, limit_threads, report_progress, run, threads

__all__ = ["Arena", "Plan", "Work", "cores", "limit_threads", "plan", "plan_tasks",
           "release_arena", "report_progress", "run", "single_threaded_blas", "threads",
           "wall_ns"]
