"""The size sweep: ns per output cell from 1024² to 4096² (8192² for 5×5), beside OpenCV's.

    python benchmarks/sizes.py                  # 1 thread and all cores
    python benchmarks/sizes.py --threads 1      # one thread only
    python benchmarks/sizes.py --sizes 256 512  # these sizes for every case
    python benchmarks/run.py --sweep            # the same, from the main benchmark
    python benchmarks/sizes.py --versus ../old  # also another checkout, in the same rounds

A cost per output cell that grows with the image means that something left
the cache as the image grew: the user who moves from a test picture to a
scan pays more per pixel. For each case (kernel size, dtype, stride and
dilation, zero borders of ``span // 2`` cells) this times ``conv2d`` with
method 'auto' and ``cv2.filter2D`` taking turns in the same rounds (medians;
CPU time of the calling thread on one thread, wall time with more), checks
OpenCV's result against ours, and prints per size the ns per output cell of
each, OpenCV's time over ours (above 1: we are faster), and ours over its
lowest across the sizes: the growth. The lines after the table check the
targets: growth within 1.25 for every case, and the 11×11 kernel within
1.25× of OpenCV's time at every size. With ``--versus``, the ``conv2d`` of
other checkouts takes its turns too, and each line adds their time over ours.

Part of any growth is the memory's, not the computation's: a call that
returns a new array writes pages the system must first give it (a page
fault and the page zeroed, for each page of an output above malloc's
reuse, 32 MiB with glibc), and an image past the caches is read from
memory. So a third contender takes its turns in the same rounds: the
memory floor, a new array of the output's shape filled with a copy of the
input cells the output lines up with (``np.copyto``; what any call that
reads its input once and returns a new array pays at least). Its ns per
output cell is the column ``copy``; ``/copy`` is ours over it; ``net`` is
ours less the floor, over its lowest across the sizes: the growth that is
ours. The checks print the growth, the net growth and the largest time
over the floor. ``--reuse-memory`` (glibc only) raises malloc's mmap and
trim thresholds to 1 GiB for the run, so that freed outputs are reused
instead of given back and faulted in again: the growth without the page
faults (measured, float32 3x3 at 4096: 1.21 against 1.63 ns an output,
the floor 0.38 against 0.71).

Timing: every contender runs once untimed (its result checked), then the
rounds take turns in Williams-balanced orders (each contender follows each
other as often: a call after one that swept tens of MiB finds its input
out of the cache), and small images get more rounds, as many as a quarter
of a second of each contender's calls takes (at least ``--repeats``): a
1 ms call timed five times moved by 10% from run to run.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import SLOW_SECONDS, clock, cv2, dilated, load_package, thread_count  # noqa: E402
from convolution import conv2d, driver  # noqa: E402

#: (label, kernel size, stride, dilation, sizes) of every case.
CASES = (
    ("3x3", 3, 1, 1, (1024, 2048, 4096)),
    ("5x5", 5, 1, 1, (1024, 2048, 4096, 8192)),
    ("11x11", 11, 1, 1, (1024, 2048, 4096)),
    ("3x3 s2 d2", 3, 2, 2, (1024, 2048, 4096)),
)
#: Growth of the cost per output cell allowed across sizes, and 11×11's time against OpenCV's.
GROWTH, OPENCV_11 = 1.25, 1.25
#: Small images get rounds until each contender's calls take about this long (seconds).
ROUND_SECONDS = 0.25


def balanced_orders(n):
    """Orders of ``n`` contenders in which each follows every other equally often.

    Williams' design (a Latin square balanced for the one before): ``n``
    orders for even ``n``, those and their reverses for odd ``n``.

    >>> balanced_orders(4)
    [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    """
    first = [(j + 1) // 2 if j % 2 else (n - j // 2) % n for j in range(n)]
    orders = [[(i + r) % n for i in first] for r in range(n)]
    return orders if n % 2 == 0 else orders + [order[::-1] for order in orders]


def race(contenders, repeats, clock):
    """{name: (median seconds, result)}: each runs once untimed, then in balanced turns.

    Rounds: at least ``repeats``, more for short calls (``ROUND_SECONDS`` of
    the slowest contender's calls), whole cycles of the balanced orders.
    A contender slower than ``SLOW_SECONDS`` keeps its first time; one
    that raises gets the exception as its result and no time.
    """
    names = list(contenders)
    results, first = {}, {}
    for name in names:
        start = clock()
        try:
            results[name] = contenders[name]()
        except (MemoryError, RuntimeError, ValueError) as error:
            results[name] = error
        first[name] = clock() - start
    again = [name for name in names
             if first[name] <= SLOW_SECONDS and not isinstance(results[name], Exception)]
    slowest = max((first[name] for name in again), default=0.0)
    orders = balanced_orders(len(again)) if again else [[]]
    rounds = max(repeats, min(20 * repeats, int(ROUND_SECONDS / max(slowest, 1e-6))))
    rounds = -(-rounds // len(orders)) * len(orders)
    times = {name: [] for name in again}
    for round_ in range(rounds):
        for index in orders[round_ % len(orders)]:
            name = again[index]
            start = clock()
            contenders[name]()
            times[name].append(clock() - start)
    return {name: ((float(np.median(times[name])) if name in times else
                    None if isinstance(results[name], Exception) else first[name]),
                   results[name]) for name in names}


def time_case(size, dtype, k, stride, dilation, threads, repeats, others=()):
    """(our ns per output, OpenCV's or None, [others'], the memory floor's) for one case and size.

    ``others``: packages whose ``conv2d`` takes its turns beside ours.
    """
    rng = np.random.default_rng(size + k)
    image = rng.random((size, size), dtype=np.float64).astype(dtype)
    kernel = rng.random((k, k)).astype(dtype)
    big = dilated(kernel, dilation)
    pad = big.shape[0] // 2
    contenders = {"ours": lambda: conv2d(image, kernel, stride, dilation, pad)}
    for i, other in enumerate(others):
        contenders[f"other {i}"] = (lambda other=other:
                                    other.conv2d(image, kernel, stride, dilation, pad))
    if cv2 is not None:
        contenders["cv2"] = lambda: cv2.filter2D(
            image, -1, big, borderType=cv2.BORDER_CONSTANT)[::stride, ::stride]
    # The memory floor: a new array of the output's shape, filled with a copy of
    # the input cells the output's cells line up with.
    rows, cols = (-(-(size - big.shape[0] + 1 + 2 * pad) // stride),) * 2
    lined_up = image[:rows * stride:stride, :cols * stride:stride]
    contenders["copy"] = lambda: np.copyto(np.empty(lined_up.shape, dtype), lined_up)
    with thread_count(threads):
        timings = race(contenders, repeats, clock(threads))
    ours, result = timings["ours"]
    cells = result.size
    assert lined_up.shape == result.shape, (lined_up.shape, result.shape)
    theirs = None
    if "cv2" in timings and timings["cv2"][0] is not None:
        other = timings["cv2"][1]
        scale = float(np.abs(kernel).sum())
        error = float(np.max(np.abs(other.astype(np.float64) - result)))
        if other.shape != result.shape or error > 64 * np.finfo(dtype).eps * scale:
            raise SystemExit(f"cv2.filter2D disagrees with conv2d on {k}x{k} {size}: "
                             f"max error {error:.3g}")
        theirs = timings["cv2"][0] * 1e9 / cells
    return (ours * 1e9 / cells, theirs,
            [timings[f"other {i}"][0] * 1e9 / cells for i in range(len(others))],
            timings["copy"][0] * 1e9 / cells)


def sweep(thread_counts, repeats=5, dtypes=(np.float32, np.float64), cases=CASES, others=()):
    """Time every case at every size and thread count; print the table and the checks.

    ``others``: (name, package) pairs timed in the same rounds. Returns the
    rows: dicts of case, dtype, threads, size, ours, cv2 (ns per output), and
    per other its ns per output under its name.
    """
    rows = []
    print(f"{'case':>10} {'dtype':>8} {'thr':>3} {'size':>6} {'ours ns':>8} {'cv2 ns':>8} "
          f"{'cv2/ours':>8} {'growth':>6} {'copy ns':>7} {'/copy':>5} {'net':>5}"
          + "".join(f" {name + '/ours':>12}" for name, _ in others), flush=True)
    for threads in thread_counts:
        for dtype in dtypes:
            for label, k, stride, dilation, sizes in cases:
                found = []
                for size in sizes:
                    ours, theirs, times, floor = time_case(size, dtype, k, stride, dilation,
                                                           threads, repeats,
                                                           [package for _, package in others])
                    found.append(dict(case=label, dtype=np.dtype(dtype).name,
                                      threads=threads, size=size, ours=ours, cv2=theirs,
                                      copy=floor,
                                      **{name: t for (name, _), t in zip(others, times)}))
                lowest = min(row["ours"] for row in found)
                lowest_net = min(row["ours"] - row["copy"] for row in found)
                for row in found:
                    row["growth"] = row["ours"] / lowest
                    row["net"] = (row["ours"] - row["copy"]) / lowest_net
                    row["over_copy"] = row["ours"] / row["copy"]
                    ratio = f"{row['cv2'] / row['ours']:8.2f}" if row["cv2"] else f"{'-':>8}"
                    theirs = f"{row['cv2']:8.2f}" if row["cv2"] else f"{'-':>8}"
                    print(f"{label:>10} {row['dtype']:>8} {threads:>3} {row['size']:>6} "
                          f"{row['ours']:8.2f} {theirs} {ratio} {row['growth']:6.2f} "
                          f"{row['copy']:7.2f} {row['over_copy']:5.2f} {row['net']:5.2f}"
                          + "".join(f" {row[name] / row['ours']:12.2f}" for name, _ in others),
                          flush=True)
                rows.extend(found)
    print()
    for line in checks(rows):
        print(line)
    return rows


def checks(rows):
    """The targets, one line each: '[ok]' or '[NO]', and the figure."""
    lines = []
    groups = {}
    for row in rows:
        groups.setdefault((row["case"], row["dtype"], row["threads"]), []).append(row)
    for (case, dtype, threads), found in groups.items():
        growth = max(row["growth"] for row in found)
        net = max(row["net"] for row in found)
        floor = max(row["ours"] / row["copy"] for row in found)
        lines.append(f"[{'ok' if growth <= GROWTH else 'NO'}] {case} {dtype} {threads} "
                     f"thread(s): cost per output within {GROWTH}x of its lowest from "
                     f"{found[0]['size']} to {found[-1]['size']} (largest {growth:.2f}x; "
                     f"less the memory floor's, {net:.2f}x [{'ok' if net <= GROWTH else 'NO'}]; "
                     f"at most {floor:.2f}x the floor)")
        if case == "11x11" and all(row["cv2"] for row in found):
            worst = max(row["ours"] / row["cv2"] for row in found)
            lines.append(f"[{'ok' if worst <= OPENCV_11 else 'NO'}] {case} {dtype} {threads} "
                         f"thread(s): within {OPENCV_11}x of OpenCV at every size "
                         f"(worst {worst:.2f}x)")
    return lines


def reuse_memory():
    """Raise glibc malloc's mmap and trim thresholds to 1 GiB for this process."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as error:
        raise SystemExit(f"--reuse-memory needs glibc: {error}")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 2 ** 30) and libc.mallopt(m_trim_threshold, 2 ** 30)):
        raise SystemExit("--reuse-memory: mallopt refused the thresholds")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default=f"1,{driver.cores()}",
                        help="comma-separated thread counts (default: 1 and the cores)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per size")
    parser.add_argument("--largest", type=int, default=8192,
                        help="leave out sizes above this (default 8192)")
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="these image sizes for every case instead (a quick look)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="comma-separated dtypes (default float32,float64)")
    parser.add_argument("--versus", metavar="CHECKOUT", action="append", default=[],
                        help="also time the convolution package of another checkout (a "
                             "folder), in the same rounds; may be given more than once")
    parser.add_argument("--reuse-memory", action="store_true",
                        help="glibc: keep freed memory for reuse (mmap and trim thresholds "
                             "of 1 GiB), so that new outputs are not paged in at every call")
    args = parser.parse_args(argv)
    if args.reuse_memory:
        reuse_memory()
    others = [(Path(path).name or path, load_package(path, f"convolution_versus_{i}"))
              for i, path in enumerate(args.versus)]
    try:
        thread_counts = sorted({int(n) for n in args.threads.split(",")})
    except ValueError:
        parser.error(f"--threads must be comma-separated positive integers, got {args.threads!r}")
    if min(thread_counts) < 1:
        parser.error(f"--threads must be comma-separated positive integers, got {args.threads!r}")
    cases = tuple((label, k, s, d, tuple(n for n in args.sizes or sizes if n <= args.largest))
                  for label, k, s, d, sizes in CASES)
    sweep(thread_counts, args.repeats, tuple(np.dtype(d) for d in args.dtypes.split(",")),
          tuple(c for c in cases if c[4]), others)


if __name__ == "__main__":
    main()
