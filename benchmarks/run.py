"""Benchmark: conv2d against every peer installed, side by side, at several thread counts.

    python benchmarks/run.py                    # 1024 and 2048 a side; 1 thread and all cores
    python benchmarks/run.py --quick            # 1024 a side, fewer repeats
    python benchmarks/run.py --threads 1,2,16   # each thread count, ours and the peers'
    python benchmarks/run.py --calibrate        # the cost model's prices (convolution/settings.py)
    python benchmarks/run.py --designs          # the banded path's designs, sizes, BLAS threads
    python benchmarks/run.py --sweep            # ns per output from 1024² to 8192² (sizes.py)
    python benchmarks/run.py --sweep --versus ../old   # and another checkout's, same rounds

Every case runs in this one process, on the same data, for ``conv2d``
(method 'auto', and each of its paths) and each installed peer:
``cv2.filter2D``, ``scipy.ndimage.correlate``, ``scipy.signal.correlate2d``
(and ``oaconvolve`` for large kernels) and ``torch.nn.functional.conv2d``
on the CPU. Peers get the same semantics: zero borders of ``span // 2``
cells, a dilated kernel with zeros inserted between its taps, and the full
result subsampled for stride (PyTorch takes stride and dilation natively).
Before timing, each result is checked against ours.

Thread counts: ours through ``CONVOLUTION_THREADS`` (which never exceeds
the cores: the library caps it), OpenCV's through ``cv2.setNumThreads``,
PyTorch's through ``torch.set_num_threads``, and every BLAS in the process
through threadpoolctl. ndimage, correlate2d and oaconvolve run on one
thread whatever the count, and are timed once.

Times are medians of several rounds in which the contenders take turns, in
an order that rotates, so that drift in the machine's speed falls on all of
them alike. On one thread every contender runs on the calling thread, and
its CPU time is measured (``time.thread_time``): other programs sharing the
cores then disturb the figures far less than they disturb wall time. With
more threads, wall time. Each line gives a peer's time divided by ours (above 1: we are
faster), 'auto''s path and how far it is from the fastest path (the time of
the path it took over the fastest path's, both timed by name), and our
throughput in GMAC/s (useful multiply-adds, kh*kw per output cell). With
several thread counts, ours are also timed taking turns in the same rounds
(wall time), for the comparison between thread counts. A
summary checks the figures the targets are stated in.

Nothing is written unless asked: ``--markdown FILE`` writes the tables,
``--plot FILE`` a plot of the ratios.
"""
import argparse
import contextlib
import math
import os

# OpenMP's idle worker threads (PyTorch's) spin for a while after each call
# by default, taking the cores from whatever runs next, here the next
# measurement. Passive waiting puts them to sleep at once: every contender
# then runs on quiet cores. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from convolution import apply_filter_to_image, conv2d, driver, fast, settings  # noqa: E402
from convolution.geometry import conv_geometry  # noqa: E402

#: Contenders slower than this on one run are timed once, not several times.
SLOW_SECONDS = 2.0
#: Contenders whose estimated time exceeds this are not run at all (shown as "-").
SKIP_SECONDS = 20.0


def optional(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


cv2 = optional("cv2")
ndimage = optional("scipy.ndimage")
signal = optional("scipy.signal")
torch = optional("torch")
threadpoolctl = optional("threadpoolctl")
imageio = optional("imageio.v3")


@contextlib.contextmanager
def thread_count(n):
    """Everyone's threads set to ``n``: ours, OpenCV's, PyTorch's and every BLAS's."""
    saved = os.environ.get("CONVOLUTION_THREADS")
    os.environ["CONVOLUTION_THREADS"] = str(n)
    if cv2 is not None:
        cv2.setNumThreads(n)
    if torch is not None:
        torch.set_num_threads(n)
    limits = (threadpoolctl.threadpool_limits(n, user_api="blas") if threadpoolctl is not None
              else contextlib.nullcontext())
    try:
        with limits:
            yield
    finally:
        if saved is None:
            os.environ.pop("CONVOLUTION_THREADS", None)
        else:
            os.environ["CONVOLUTION_THREADS"] = saved


def race(contenders, repeats, clock=time.perf_counter, walls=None):
    """{name: (median seconds, result)} for functions timed side by side.

    Each function runs once to warm up (and to give its result); then the
    rounds interleave them, in an order that rotates from round to round. A
    function slower than SLOW_SECONDS is not run again: its first time
    stands. A function that raises (PyTorch's im2col can ask for GBs) gets
    the exception as its result and no time. ``clock``: wall time, or
    ``time.thread_time`` for work on the calling thread alone, which other
    processes sharing the cores disturb less. ``walls``, a dict, receives
    the median wall times too, whatever ``clock`` is.
    """
    first, results = {}, {}
    times, wall = {name: [] for name in contenders}, {name: [] for name in contenders}
    for name, function in contenders.items():
        start, start_wall = clock(), time.perf_counter()
        try:
            results[name] = function()
        except (MemoryError, RuntimeError, ValueError) as error:
            results[name] = error
        first[name] = (clock() - start, time.perf_counter() - start_wall)
    again = [name for name in contenders
             if first[name][0] <= SLOW_SECONDS and not isinstance(results[name], Exception)]
    for round_ in range(repeats):
        for k in range(len(again)):
            name = again[(k + round_) % len(again)]
            start, start_wall = clock(), time.perf_counter()
            contenders[name]()
            times[name].append(clock() - start)
            wall[name].append(time.perf_counter() - start_wall)
    if walls is not None:
        walls.update((name, statistics.median(wall[name]) if wall[name] else first[name][1])
                     for name in contenders if not isinstance(results[name], Exception))
    return {name: (None if isinstance(results[name], Exception)
                   else statistics.median(times[name]) if times[name] else first[name][0],
                   results[name])
            for name in contenders}


def clock(threads):
    """The clock for ``threads``: CPU time of the calling thread alone for one, else wall time."""
    return time.thread_time if threads == 1 else time.perf_counter


def dilated(kernel, dilation):
    """The kernel with ``dilation - 1`` zeros between its taps."""
    kh, kw = kernel.shape
    out = np.zeros(((kh - 1) * dilation + 1, (kw - 1) * dilation + 1), kernel.dtype)
    out[::dilation, ::dilation] = kernel
    return out


def gaussian(size, dtype):
    """A normalised Gaussian kernel with OpenCV's default sigma for its size."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
    return np.outer(g, g).astype(dtype) / np.outer(g, g).sum().astype(dtype)


#: Peers whose thread count the benchmark sets; the others run on one thread.
THREADED_PEERS = ("cv2.filter2D", "torch.conv2d")


def peers(image, kernel, stride, dilation):
    """{name: function} computing what conv2d computes here, for every peer installed."""
    big = dilated(kernel, dilation)
    pad = big.shape[0] // 2
    s = stride
    found = {}
    if cv2 is not None:
        found["cv2.filter2D"] = lambda: cv2.filter2D(
            image, -1, big, borderType=cv2.BORDER_CONSTANT)[::s, ::s]
    if ndimage is not None:
        found["ndimage.correlate"] = lambda: ndimage.correlate(
            image, big, mode="constant")[::s, ::s]
    if signal is not None:
        found["signal.correlate2d"] = lambda: signal.correlate2d(
            image, big, mode="same")[::s, ::s]
        if big.shape[0] >= 11:
            found["signal.oaconvolve"] = lambda: signal.oaconvolve(
                image, big[::-1, ::-1], mode="same")[::s, ::s]
    if torch is not None:
        x = torch.from_numpy(image)[None, None]
        w = torch.from_numpy(np.ascontiguousarray(kernel))[None, None]
        found["torch.conv2d"] = lambda: torch.nn.functional.conv2d(
            x, w, stride=s, dilation=dilation, padding=pad)[0, 0].numpy()
    return found, pad


def cases(sizes):
    """(label, image size, dtype, kernel, stride, dilation) for every benchmark case."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for size in sizes:
            for k in (3, 5, 11, 31):
                yield f"random {k}x{k}", size, dtype, rng.random((k, k)).astype(dtype), 1, 1
            for k in (9, 31):
                yield f"gaussian {k}x{k}", size, dtype, gaussian(k, dtype), 1, 1
            for k in (3, 5, 11):
                yield (f"random {k}x{k} s2 d2", size, dtype, rng.random((k, k)).astype(dtype),
                       2, 2)


def estimate(name, image, kernel, stride, dilation, geometry):
    """A rough time, in seconds, for the contenders that can take minutes, so as to skip them.

    Our paths: their own cost model. The direct peers cost a multiply-add
    per tap of the dilated kernel (zeros included) per pixel; PyTorch's
    float64 CPU path unfolds the image into a matrix kh*kw times its size
    (im2col) and runs far slower than its float32.
    """
    taps = dilated(kernel, dilation).size
    if name in fast.METHODS:
        return fast.plan(name, geometry, kernel).ns * 1e-9
    if name in ("ndimage.correlate", "signal.correlate2d"):
        return image.size * taps / 1.5e9
    if name == "torch.conv2d" and image.dtype == np.float64:
        outputs = image.size // stride ** 2
        if outputs * kernel.size * 8 > 4 * 2 ** 30:      # the unfolded matrix alone
            return math.inf
        return outputs * kernel.size / 5e7
    return 0.0


def run_case(label, size, dtype, kernel, stride, dilation, thread_counts, repeats, rows,
             with_paths):
    rng = np.random.default_rng(size)
    image = rng.random((size, size)).astype(dtype)
    found, padding = peers(image, kernel, stride, dilation)
    geometry = conv_geometry(image.shape, kernel.shape, stride, dilation, padding)
    ours = {"auto": lambda: conv2d(image, kernel, stride, dilation, padding)}
    if with_paths:
        for method in fast.cost_estimates(kernel, geometry):
            ours[method] = (lambda method=method: conv2d(image, kernel, stride, dilation,
                                                         padding, method=method))
    contenders = {**ours, **found}
    skipped = {name for name in contenders
               if estimate(name, image, kernel, stride, dilation, geometry) > SKIP_SECONDS}
    single = {}      # peers that ignore the thread count: timed once
    for n in thread_counts:
        with thread_count(n):
            chosen = fast.choose_method(kernel, geometry, images=image[None])[0]
            timed = {name: f for name, f in contenders.items() if name not in skipped
                     and (name in ours or name in THREADED_PEERS or name not in single)}
            walls = {}
            timings = race(timed, repeats, clock(n), walls)
        expected = timings["auto"][1]
        scale = float(np.abs(kernel).sum() * np.abs(image).max())
        for name, (_, result) in timings.items():
            if isinstance(result, Exception):
                print(f"  {name} failed on {label} {size}: {str(result).splitlines()[0][:120]}")
                continue
            error = float(np.max(np.abs(np.asarray(result, dtype=np.float64) - expected)))
            if result.shape != expected.shape or error > 64 * np.finfo(dtype).eps * scale:
                raise SystemExit(f"{name} disagrees with conv2d on {label} {size} "
                                 f"{np.dtype(dtype).name}: shape {result.shape} vs "
                                 f"{expected.shape}, max error {error:.3g}")
            if name in found and name not in THREADED_PEERS:
                single.setdefault(name, timings[name][0])
        times = {name: timings[name][0] if name in timings else None for name in contenders}
        times.update({name: t for name, t in single.items() if name not in timings})
        row = {"case": label, "size": size, "dtype": np.dtype(dtype).name, "threads": n,
               "method": chosen, "ours": times["auto"], "wall": walls["auto"],
               "gmacs": expected.size * kernel.size / times["auto"] / 1e9,
               "paths": {m: times[m] for m in ours if m != "auto"},
               "peers": {name: times[name] for name in found}}
        rows.append(row)
        print(format_row(row), flush=True)
    scaling(rows[-len(thread_counts):], ours["auto"], thread_counts, repeats)


def scaling(case_rows, function, thread_counts, repeats):
    """Our wall time at each thread count, all timed in the same rounds, into each row's "scaling".

    The per-count races above run one after the other, so that a burst of
    other work on the machine can fall on one count and not the others; here
    the counts take turns, as the contenders of a race do.
    """
    if len(thread_counts) < 2:
        return

    def at(n):
        def call():
            os.environ["CONVOLUTION_THREADS"] = str(n)
            return function()
        return call

    saved = os.environ.get("CONVOLUTION_THREADS")
    try:
        timings = race({n: at(n) for n in thread_counts}, repeats)
    finally:
        if saved is None:
            os.environ.pop("CONVOLUTION_THREADS", None)
        else:
            os.environ["CONVOLUTION_THREADS"] = saved
    for row in case_rows:
        row["scaling"] = timings[row["threads"]][0]
    print("  ours in turns, wall: " + ", ".join(
        f"{n} threads {timings[n][0] * 1e3:.2f} ms" for n in thread_counts), flush=True)


def photo_image():
    """A 1920x1080 uint8 RGB photo: the sample picture enlarged, nearest neighbour."""
    photo = HERE.parent / "files" / "grace_hopper.jpg"
    if imageio is None or not photo.exists():
        return None
    small = imageio.imread(photo)[..., :3]
    rows_index = np.arange(1080) * small.shape[0] // 1080
    cols_index = np.arange(1920) * small.shape[1] // 1920
    return np.ascontiguousarray(small[rows_index][:, cols_index])


def run_photo(thread_counts, repeats, rows):
    """The photo through apply_filter_to_image with a 9x9 Gaussian, against OpenCV and ndimage."""
    image = photo_image()
    if image is None:
        return
    kernel = gaussian(9, np.float64)
    contenders = {"auto": lambda: apply_filter_to_image(image, kernel)}
    if cv2 is not None:
        contenders["cv2.filter2D"] = lambda: cv2.filter2D(image, -1, kernel,
                                                          borderType=cv2.BORDER_REFLECT_101)
    if ndimage is not None:
        def ndimage_photo():
            channels = [ndimage.correlate(image[..., c].astype(np.float32),
                                          kernel.astype(np.float32), mode="mirror")
                        for c in range(3)]
            return np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8)
        contenders["ndimage.correlate"] = ndimage_photo
    single = {}
    for n in thread_counts:
        with thread_count(n):
            walls = {}
            timings = race({name: f for name, f in contenders.items() if name not in single},
                           repeats, clock(n), walls)
        expected = timings["auto"][1]
        for name, (_, result) in timings.items():
            if np.max(np.abs(result.astype(int) - expected.astype(int))) > 1:
                raise SystemExit(f"{name} disagrees with apply_filter_to_image on the photo")
        if "ndimage.correlate" in timings:
            single["ndimage.correlate"] = timings["ndimage.correlate"]
        timings.update(single)
        row = {"case": "photo 1920x1080 RGB, gaussian 9x9", "size": 1920, "dtype": "uint8",
               "threads": n, "method": "auto", "ours": timings["auto"][0],
               "wall": walls["auto"],
               "gmacs": expected.size * kernel.size / timings["auto"][0] / 1e9, "paths": {},
               "peers": {name: t for name, (t, _) in timings.items() if name != "auto"}}
        rows.append(row)
        print(format_row(row), flush=True)
    scaling(rows[-len(thread_counts):], contenders["auto"], thread_counts, repeats)


def run_loops(rows):
    """The reference loops against 'auto' on the case issue 2 names: 256x256, 5x5, float64."""
    rng = np.random.default_rng(1)
    image, kernel = rng.random((256, 256)), rng.random((5, 5))
    timings = race({"auto": lambda: conv2d(image, kernel, padding="same"),
                    "method='loops'": lambda: conv2d(image, kernel, padding="same",
                                                     method="loops")}, 3)
    (ours, result), (loops, expected) = timings["auto"], timings["method='loops'"]
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)
    row = {"case": "random 5x5 (vs method='loops')", "size": 256, "dtype": "float64",
           "threads": driver.threads(), "method": "auto", "ours": ours,
           "gmacs": expected.size * 25 / ours / 1e9, "paths": {},
           "peers": {"method='loops'": loops}}
    rows.append(row)
    print(format_row(row), flush=True)


PEER_ORDER = ["cv2.filter2D", "ndimage.correlate", "signal.correlate2d", "signal.oaconvolve",
              "torch.conv2d", "method='loops'"]


def auto_over_best(row):
    """The time of the path 'auto' took over the fastest path's (1.0: it took the fastest).

    Both from the same rounds of the paths' own timings, so that timing the
    same path twice (as 'auto' and by name) does not count as a difference.
    None where the paths were not timed.
    """
    paths = {name: t for name, t in row["paths"].items() if t is not None}
    if row["method"] not in paths:
        return None
    return paths[row["method"]] / min(paths.values())


def format_row(row):
    cells = [f"{row['case']:<34}", f"{row['size']:>5}", f"{row['dtype']:<8}",
             f"{row['threads']:>2}t", f"{row['method']:<9}", f"{row['ours'] * 1e3:8.2f} ms",
             f"{row['gmacs']:6.2f}"]
    ratio = auto_over_best(row)
    if ratio is not None:
        best = min((t, m) for m, t in row["paths"].items() if t is not None)[1]
        cells.append(f"auto/best {ratio:4.2f} ({best})")
    for name in PEER_ORDER:
        if name in row["peers"]:
            t = row["peers"][name]
            cells.append(f"{name}: " + ("-" if t is None else f"{t / row['ours']:.2f}x"))
    return "  ".join(cells)


def markdown(rows):
    """The rows as a Markdown table: our times, each peer's over ours, our paths' times."""
    names = [n for n in PEER_ORDER if any(n in r["peers"] for r in rows)]
    paths = [m for m in fast.METHODS if any(m in r["paths"] for r in rows)]
    header = (["case", "size", "dtype", "threads", "path", "ours (ms)", "wall (ms)",
               "in turns (ms)", "GMAC/s", "auto/best"] + names + [f"{m} (ms)" for m in paths])

    def shown(value, form):
        return "" if value == "" else "-" if value is None else form(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        ratio = auto_over_best(r)
        cells = ([r["case"], r["size"], r["dtype"], r["threads"], r["method"],
                  f"{r['ours'] * 1e3:.2f}", shown(r.get("wall", ""), lambda t: f"{t * 1e3:.2f}"),
                  shown(r.get("scaling", ""), lambda t: f"{t * 1e3:.2f}"),
                  f"{r['gmacs']:.2f}", "" if ratio is None else f"{ratio:.2f}"]
                 + [shown(r["peers"].get(n, ""), lambda t: f"{t / r['ours']:.2f}") for n in names]
                 + [shown(r["paths"].get(m, ""), lambda t: f"{t * 1e3:.2f}") for m in paths])
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def ratio_table(rows):
    """Per thread count and peer: min, median and max of peer time / our time."""
    lines = ["| threads | peer | cases | min | median | max |", "|---|---|---|---|---|---|"]
    for n in sorted({r["threads"] for r in rows if "loops" not in r["case"]}):
        sel = [r for r in rows if r["threads"] == n and "loops" not in r["case"]]
        for name in PEER_ORDER[:-1]:
            ratios = [r["peers"][name] / r["ours"] for r in sel if r["peers"].get(name)]
            if ratios:
                lines.append(f"| {n} | {name} | {len(ratios)} | {min(ratios):.2f} | "
                             f"{statistics.median(ratios):.2f} | {max(ratios):.2f} |")
    return "\n".join(lines)


def summary(rows):
    """The figures the targets are stated in, each with whether it holds."""
    lines = []
    single = [r for r in rows if r["dtype"] != "uint8" and "loops" not in r["case"]]

    def check(text, holds):
        lines.append(f"[{'ok' if holds else 'NO'}] {text}")

    for n in sorted({r["threads"] for r in single}):
        at = [r for r in single if r["threads"] == n]
        for name in ("ndimage.correlate", "signal.correlate2d", "torch.conv2d"):
            ratios = [r["peers"][name] / r["ours"] for r in at if r["peers"].get(name)]
            if ratios:
                worst = min(ratios)
                check(f"{n} thread(s): faster than {name} on every case "
                      f"(lowest ratio {worst:.2f} over {len(ratios)} cases)", worst > 1)
        cv = {(r["case"], r["size"], r["dtype"]): r["peers"]["cv2.filter2D"] / r["ours"]
              for r in at if r["peers"].get("cv2.filter2D")}
        if cv:
            dense = [v for (case, _, dtype), v in cv.items()
                     if dtype == "float32" and case in ("random 3x3", "random 5x5")]
            strided = [v for (case, _, _), v in cv.items() if "s2 d2" in case]
            f32 = [v for (_, _, dtype), v in cv.items() if dtype == "float32"]
            if dense:
                check(f"{n} thread(s): dense float32 3x3 and 5x5 within 1.5x of OpenCV "
                      f"(OpenCV up to {1 / min(dense):.2f}x faster)", min(dense) >= 1 / 1.5)
            if strided:
                check(f"{n} thread(s): faster than OpenCV on every stride 2 / dilation 2 case "
                      f"(lowest ratio {min(strided):.2f})", min(strided) > 1)
            if f32:
                med = statistics.median(f32)
                check(f"{n} thread(s): float32 median against OpenCV at most 1.5x "
                      f"(OpenCV {1 / med:.2f}x faster in the median)", med >= 1 / 1.5)
        autos = [(auto_over_best(r), r) for r in at if auto_over_best(r) is not None]
        if autos:
            worst, r = max(autos, key=lambda item: item[0])
            check(f"{n} thread(s): 'auto' within 1.3x of the fastest path on every case "
                  f"(worst {worst:.2f}: {r['case']} {r['size']} {r['dtype']})", worst <= 1.3)
    photos = [r for r in rows if r["dtype"] == "uint8" and r["peers"].get("cv2.filter2D")]
    for r in photos:
        ratio = r["ours"] / r["peers"]["cv2.filter2D"]
        check(f"{r['threads']} thread(s): the 1920x1080 photo within 1.5x of OpenCV "
              f"({ratio:.2f}x its time)", ratio <= 1.5)
    counts = sorted({r["threads"] for r in single})
    if 1 in counts and 2 in counts and len(counts) > 2:
        top = counts[-1]
        by_case = {}
        for r in rows:      # in wall time, the counts timed in the same rounds
            if "scaling" in r:
                by_case.setdefault((r["case"], r["size"], r["dtype"]), {})[r["threads"]] = (
                    r["scaling"])
        worst = max((t[top] / min(t[1], t[2]), case) for case, t in by_case.items()
                    if {1, 2, top} <= set(t))
        check(f"{top} threads take at most 1.15x the best of 1 and 2 threads on every case, "
              f"wall time, the counts in turns (worst {worst[0]:.2f}: "
              f"{' '.join(map(str, worst[1]))})", worst[0] <= 1.15)
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in rows if r["dtype"] != "uint8" and "loops" not in r["case"]]
    keys = sorted({(r["size"], r["threads"]) for r in single})
    fig, axes = plt.subplots(len(keys), 2, figsize=(13, 3.2 * len(keys) + 0.8), squeeze=False)
    for row_axes, (size, n) in zip(axes, keys):
        for ax, dtype in zip(row_axes, ("float32", "float64")):
            sel = [r for r in single if r["size"] == size and r["dtype"] == dtype
                   and r["threads"] == n]
            names = [m for m in PEER_ORDER if any(r["peers"].get(m) for r in sel)]
            x = np.arange(len(sel))
            width = 0.8 / max(len(names), 1)
            for k, name in enumerate(names):
                ratios = [r["peers"][name] / r["ours"] if r["peers"].get(name) else np.nan
                          for r in sel]
                ax.bar(x + (k - (len(names) - 1) / 2) * width, ratios, width, label=name)
            ax.axhline(1, color="black", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xticks(x, [r["case"].replace("random ", "r").replace("gaussian ", "g")
                              for r in sel], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{size}x{size} {dtype}, {n} thread(s)", fontsize=10)
            ax.set_ylabel("peer time / our time")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("conv2d(method='auto') against peers: above 1, conv2d is faster", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


#: The prices of the cost model (fields of convolution.settings.Settings) that `calibrate` fits.
FITTED = ("call_ns", "flat_ns", "strided_ns", "fetch_ns", "copy_ns", "mac_ns", "fft_ns",
          "fft_call_ns")


def calibration_cases():
    """(label, image, kernel, stride, dilation, method) on which `calibrate` times our paths."""
    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.float32):
        for size in (256, 1024):
            image = rng.random((size, size)).astype(dtype)
            kernels = [rng.random(shape).astype(dtype) for shape in
                       ((1, 1), (3, 3), (5, 5), (9, 9), (11, 11), (3, 1), (35, 1), (1, 9),
                        (31, 31))] + [gaussian(9, dtype), gaussian(31, dtype)]
            for kernel in kernels:
                for stride, dilation in ((1, 1), (2, 2)):
                    geometry = conv_geometry(image.shape, kernel.shape, stride, dilation)
                    for method in fast.cost_estimates(kernel, geometry):
                        yield (f"{np.dtype(dtype).name} {size} {kernel.shape} s{stride} "
                               f"d{dilation} {method}", image, kernel, stride, dilation, method)


def calibrate(repeats):
    """Fit the cost model's prices (``convolution.settings``) to this machine, one thread.

    Each of our paths is timed on many cases (CPU time of the calling
    thread, the least of ``repeats`` runs: the run least disturbed by other
    programs). On one thread every estimate is a sum of the constants, each
    times what the case does of it (cells fetched, multiply-adds, calls...),
    so the constants follow by least squares, non-negative, on the relative
    errors. The handoff is measured apart: what a second thread adds to each
    call of many short ones, in wall time.
    """
    from concurrent.futures import ThreadPoolExecutor
    os.environ["CONVOLUTION_THREADS"] = "1"
    rows, times, labels = [], [], []
    for label, image, kernel, stride, dilation, method in calibration_cases():
        geometry = conv_geometry(image.shape, kernel.shape, stride, dilation)
        if fast.plan(method, geometry, kernel).ns > 0.5e9:
            continue
        features = []
        for name in FITTED:
            with settings.using(**{other: float(other == name) for other in FITTED}):
                features.append(fast.plan(method, geometry, kernel).ns)
        run = lambda: conv2d(image, kernel, stride, dilation, method=method)  # noqa: E731
        run()
        samples = []
        for _ in range(repeats):
            start = time.thread_time()
            run()
            samples.append(time.thread_time() - start)
        rows.append(features + [1.0])      # and what every call costs, whatever its path
        times.append(min(samples) * 1e9)
        labels.append(label)
    a, t = np.array(rows), np.array(times)
    weighted = a / t[:, None]        # relative errors
    free = list(range(len(FITTED) + 1))
    while True:                      # least squares, dropping constants that come out negative
        fit = np.zeros(len(FITTED) + 1)
        fit[free] = np.linalg.lstsq(weighted[:, free], np.ones(len(t)), rcond=None)[0]
        if (fit[free] >= 0).all():
            break
        free = [k for k in free if fit[k] > 0]
    error = a @ fit / t - 1
    worst = np.argsort(-np.abs(error))[:5]
    short = [rng_short.random(8192) for rng_short in [np.random.default_rng(3)] * 2]
    calls = 4000

    def loop(a):
        for _ in range(calls // 2):
            np.multiply(a, 1.0, out=a)

    pool = ThreadPoolExecutor(2)
    both = race({"one": lambda: [loop(a) for a in short],
                 "two": lambda: list(pool.map(loop, short))}, repeats)
    handoff = max(2 * both["two"][0] - both["one"][0], 0.0) / calls * 1e9
    print(f"# Cost model prices fitted on {len(t)} cases, for convolution/settings.py "
          f"(relative error: median {np.median(np.abs(error)):.2f}, "
          f"largest {np.abs(error).max():.2f}):")
    for name, value in zip(FITTED, fit):
        print(f"{name} = {value:.3g}")
    print(f"handoff_ns = {handoff:.3g}")
    print(f"# and {fit[-1] / 1e3:.0f} us a conv2d call on every path (validation, "
          f"planning), which ranks none above another")
    print("# Worst fitted cases (estimate / measured):")
    for k in worst:
        print(f"#   {labels[k]}: {a[k] @ fit / 1e6:.2f} ms / {t[k] / 1e6:.2f} ms")


def design_by_column(padded, kernel, rows, strip_rows, out):
    """Banded design A: per kernel column b, a band of the column's weights times the padded
    rows shifted by b, as a strided view (no copy); kw products and kw - 1 additions a strip."""
    (kh, kw), (height, width) = kernel.shape, out.shape
    depth, item = rows + kh - 1, padded.itemsize
    bands = []
    for b in range(kw):
        band = np.zeros((rows, depth), kernel.dtype)
        for i in range(rows):
            band[i, i:i + kh] = kernel[:, b]
        bands.append(band)
    scratch = np.empty((strip_rows // rows, rows, width), out.dtype)
    for top in range(0, height, strip_rows):
        groups = min(strip_rows, height - top) // rows
        target = out[top:top + groups * rows].reshape(groups, rows, width)
        for b in range(kw):
            view = np.ndarray((groups, depth, width), padded.dtype, padded,
                              (top * padded.shape[1] + b) * item,
                              (rows * padded.strides[0], padded.strides[0], item))
            np.matmul(bands[b], view, out=target if b == 0 else scratch[:groups])
            if b:
                target += scratch[:groups]
    return out


def design_by_shift(padded, kernel, rows, strip_rows, out):
    """Banded design B (the library's): per strip, each padded row laid out kw times, shifted
    by each kernel column (one copy); then one product of the band (all weights) a strip."""
    (kh, kw), (height, width) = kernel.shape, out.shape
    depth, item = (rows + kh - 1) * kw, padded.itemsize
    band = np.zeros((rows, rows + kh - 1, kw), kernel.dtype)
    for i in range(rows):
        band[i, i:i + kh] = kernel
    band = band.reshape(rows, depth)
    shifted = np.empty((strip_rows + kh - 1, kw, width), out.dtype)
    for top in range(0, height, strip_rows):
        groups = min(strip_rows, height - top) // rows
        count = groups * rows + kh - 1
        shifted[:count] = np.ndarray((count, kw, width), padded.dtype, padded,
                                     top * padded.strides[0], (padded.strides[0], item, item))
        view = np.ndarray((groups, depth, width), out.dtype, shifted, 0,
                          (rows * kw * width * item, width * item, item))
        np.matmul(band, view, out=out[top:top + groups * rows].reshape(groups, rows, width))
    return out


def designs(repeats):
    """The banded path's two designs, its rows per group and strip sizes, and BLAS's threads.

    Designs A and B run on the same padded image (padded once, outside the
    timing), one thread, CPU time; then the library's path (which fetches
    and checks its strips itself) with other band_rows and strip_bytes;
    then the library's path with BLAS left at its own thread count instead
    of one, on one and on all of our threads (wall time).
    """
    rng = np.random.default_rng(4)
    os.environ["CONVOLUTION_THREADS"] = "1"
    limits = (threadpoolctl.threadpool_limits(1, user_api="blas") if threadpoolctl is not None
              else contextlib.nullcontext())
    print("# Designs, one thread, CPU time (ms): A = band per kernel column, kw products and "
          "adds; B = rows shifted once per kernel column, one product")
    for dtype in (np.float32, np.float64):
        for k in (3, 5):
            image = rng.random((1024, 1024)).astype(dtype)
            kernel = rng.random((k, k)).astype(dtype)
            padded = np.pad(image, k // 2)
            out = np.empty_like(image)
            contenders = {}
            for rows in (4, 8):
                for strip_rows in (32, 64, 128):
                    contenders[f"A R={rows} rows={strip_rows}"] = (
                        lambda r=rows, s=strip_rows: design_by_column(padded, kernel, r, s, out))
                    contenders[f"B R={rows} rows={strip_rows}"] = (
                        lambda r=rows, s=strip_rows: design_by_shift(padded, kernel, r, s, out))
            if cv2 is not None:
                cv2.setNumThreads(1)
                contenders["cv2.filter2D"] = lambda: cv2.filter2D(image, -1, kernel)
            expected = conv2d(image, kernel, padding=k // 2, method="direct")
            with limits:
                timings = race(contenders, repeats, time.thread_time)
            for name, (_, result) in timings.items():
                if not name.startswith("cv2"):
                    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
            print(f"{np.dtype(dtype).name} {k}x{k}: " + ", ".join(
                f"{name} {t * 1e3:.2f}" for name, (t, _) in timings.items()), flush=True)
    print("# The library's banded path: band_rows x strip_bytes, one thread, CPU time (ms)")
    for dtype in (np.float32, np.float64):
        for k, size in ((3, 1024), (5, 1024), (3, 4096), (5, 4096)):
            image = rng.random((size, size)).astype(dtype)
            kernel = rng.random((k, k)).astype(dtype)
            contenders = {}
            for rows in (4, 8):
                for mib in (1, 2, 4):
                    def run(rows=rows, mib=mib):
                        with settings.using(band_rows=rows, strip_bytes=mib * 2 ** 20):
                            return conv2d(image, kernel, padding=k // 2, method="banded")
                    contenders[f"R={rows} {mib} MiB"] = run
            timings = race(contenders, repeats, time.thread_time)
            print(f"{np.dtype(dtype).name} {size} {k}x{k}: " + ", ".join(
                f"{name} {t * 1e3:.2f}" for name, (t, _) in timings.items()), flush=True)
    print("# BLAS threads inside the banded path: one (the driver's choice) or BLAS's own "
          "count, wall time (ms)")
    blas = [lib.num_threads for lib in driver.blas.libraries()]
    print(f"BLAS libraries found: {len(blas)}, threads now {blas}")
    for size in (1024, 4096):
        image = rng.random((size, size)).astype(np.float32)
        kernel = rng.random((3, 3)).astype(np.float32)
        for n in sorted({1, driver.cores()}):
            os.environ["CONVOLUTION_THREADS"] = str(n)
            run = lambda: conv2d(image, kernel, padding=1, method="banded")  # noqa: E731
            owned = race({"": run}, repeats)[""][0]
            with settings.using(limit_blas=False):
                left = race({"": run}, repeats)[""][0]
            print(f"float32 {size} 3x3, {n} of our threads: BLAS on one thread {owned * 1e3:.2f}, "
                  f"BLAS on its own {blas} {left * 1e3:.2f}", flush=True)
    os.environ["CONVOLUTION_THREADS"] = "1"


def operation_cases():
    """(label, {name: function(package) -> callable}) for the operations beyond the filter.

    The names of each case are timed side by side; ``targets`` below reads
    their ratios: the backward pass against its forward call, the transposed
    convolution against the conv2d it equals, 'auto' on layers against the
    fastest named method.
    """
    rng = np.random.default_rng(5)
    f32 = np.float32

    def layer(label, shape, kernel_shape, dtype, **params):
        x, k = rng.random(shape).astype(dtype), rng.random(kernel_shape).astype(dtype)
        return (f"layer {label}", {name: (lambda p, m=name: lambda: p.conv2d(x, k, method=m,
                                                                               **params))
                                   for name in ("auto", "matmul", "banded", "fft")})

    yield layer("x (1,1,512,512) f32, k (2,1,31,31)", (1, 1, 512, 512), (2, 1, 31, 31), f32)
    yield layer("x (1,1,256,256) f32, k (4,1,21,21), same", (1, 1, 256, 256), (4, 1, 21, 21),
                f32, padding="same")
    yield layer("x (2,2,128,128) f64, k (2,2,9,9)", (2, 2, 128, 128), (2, 2, 9, 9), np.float64)
    for size, dtype, k, mode in ((512, f32, 3, "zeros"), (512, f32, 9, "reflect"),
                                 (512, f32, 31, "zeros"), (512, f32, 31, "circular"),
                                 (256, np.float64, 15, "reflect"), (256, np.float64, 5, "replicate")):
        x = rng.random((size, size)).astype(dtype)
        kernel = gaussian(k, dtype) if k == 15 else rng.random((k, k)).astype(dtype)
        y = rng.random((size - k + 1, size - k + 1)).astype(dtype) if mode == "zeros" else \
            rng.random((size, size)).astype(dtype)
        padding = 0 if mode == "zeros" else "same"
        yield (f"backward {size} {np.dtype(dtype).name} {k}x{k} {mode}",
               {"backward": lambda p, x=x, y=y, kernel=kernel, padding=padding, mode=mode: (
                   lambda: p.conv2d_backward(y, x, kernel, padding=padding, padding_mode=mode)),
                "forward": lambda p, x=x, kernel=kernel, padding=padding, mode=mode: (
                    lambda: p.conv2d(x, kernel, padding=padding, padding_mode=mode))})
    x4, k4 = rng.random((8, 16, 64, 64)).astype(f32), rng.random((16, 16, 3, 3)).astype(f32)
    y4 = rng.random((8, 16, 64, 64)).astype(f32)
    yield ("backward layer (8,16,64,64) f32 3x3 reflect",
           {"backward": lambda p: lambda: p.conv2d_backward(y4, x4, k4, padding=1,
                                                             padding_mode="reflect"),
            "forward": lambda p: lambda: p.conv2d(x4, k4, padding=1, padding_mode="reflect")})
    for k, stride in ((21, 1), (5, 2), (11, 2)):
        x = rng.random((256, 256)).astype(f32)
        kernel = rng.random((k, k)).astype(f32)
        spread = np.zeros(((256 - 1) * stride + 1,) * 2, f32)
        spread[::stride, ::stride] = x
        yield (f"transpose 256 f32 {k}x{k} s{stride}",
               {"transpose": lambda p, x=x, kernel=kernel, stride=stride: (
                   lambda: p.conv_transpose2d(x, kernel, stride=stride)),
                "conv2d": lambda p, spread=spread, kernel=kernel: (
                    lambda: p.conv2d(spread, kernel, padding="full", flip=True))})


def targets(label, times):
    """The ratio a case is held to, as text (empty where none applies)."""
    if label.startswith("layer"):
        named = [t for name, t in times.items() if name != "auto" and t is not None]
        return f"auto / fastest named {times['auto'] / min(named):.2f} (target <= 1.3)"
    if label.startswith("backward"):
        return f"backward / forward {times['backward'] / times['forward']:.2f} (target <= 2.5)"
    if label.startswith("transpose"):
        limit = 1.3 if label.endswith("s1") else 0.7
        return (f"transpose / conv2d {times['transpose'] / times['conv2d']:.2f} "
                f"(target <= {limit})")
    return ""


def load_package(path, name="convolution_other"):
    """The ``convolution`` package of another checkout at ``path``, imported as ``name``."""
    import importlib.util
    folder = Path(path).resolve() / "convolution"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_operations(repeats, other=None):
    """Time `operation_cases`, and with ``other`` (a package) the same calls on it, in turns.

    Prints per case the median times (ms), the target ratio, and with
    ``other`` the ratio other / ours of every name.
    """
    import convolution
    print("# Operations: median ms; targets; with --versus, theirs / ours (same rounds)")
    for label, functions in operation_cases():
        contenders = {name: make(convolution) for name, make in functions.items()}
        if other is not None:
            contenders.update({f"theirs {name}": make(other) for name, make in functions.items()})
        timings = race(contenders, repeats)
        times = {name: t for name, (t, _) in timings.items()}
        ours = {name: times[name] for name in functions}
        line = f"{label}: " + ", ".join(f"{name} {t * 1e3:.2f}" for name, t in ours.items()
                                        if t is not None)
        line += "; " + targets(label, ours)
        if other is not None:
            line += "; theirs/ours " + ", ".join(
                f"{name} {times['theirs ' + name] / t:.2f}" for name, t in ours.items()
                if t is not None and times["theirs " + name] is not None)
        print(line, flush=True)


def run_versus_filters(sizes, repeats, other):
    """Every filter case of `cases` with 'auto', ours against ``other``'s, in turns: theirs / ours."""
    import convolution
    print("# Filter cases, 'auto': median ms, theirs / ours (same rounds)")
    ratios = []
    for label, size, dtype, kernel, stride, dilation in cases(sizes):
        image = np.random.default_rng(1).random((size, size)).astype(dtype)
        timings = race({p.__name__: (lambda p=p: p.conv2d(image, kernel, stride, dilation))
                        for p in (convolution, other)}, repeats)
        ours, theirs = timings["convolution"][0], timings[other.__name__][0]
        ratios.append(theirs / ours)
        print(f"{label} {size} {np.dtype(dtype).name}: ours {ours * 1e3:.2f}, theirs "
              f"{theirs * 1e3:.2f}, theirs/ours {theirs / ours:.2f}", flush=True)
    print(f"theirs/ours over the filter cases: min {min(ratios):.2f}, median "
          f"{statistics.median(ratios):.2f}, max {max(ratios):.2f}")


def load_average():
    """The machine's load averages (1, 5, 15 minutes), or '?' where the OS gives none."""
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except (AttributeError, OSError):
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1024x1024 only and fewer repeats")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes (default 1024 2048)")
    parser.add_argument("--threads", default=f"1,{driver.cores()}",
                        help="comma-separated thread counts (default: 1 and the cores)")
    parser.add_argument("--repeats", type=int, help="timed rounds per measurement (default 7)")
    parser.add_argument("--no-paths", action="store_true",
                        help="time 'auto' only, not each of our paths")
    parser.add_argument("--plot", help="write a plot of the ratios to this file")
    parser.add_argument("--markdown", help="write the tables as Markdown to this file")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the constants of the cost model 'auto' uses, and stop")
    parser.add_argument("--operations", action="store_true",
                        help="time the layer, the backward pass and the transposed convolution "
                             "against their targets, and stop")
    parser.add_argument("--versus", metavar="CHECKOUT",
                        help="with --operations, --sweep or alone: also time the convolution "
                             "package of another checkout (a folder), in the same rounds, and "
                             "give ratios")
    parser.add_argument("--designs", action="store_true",
                        help="time the banded path's designs, sizes and BLAS threads, and stop")
    parser.add_argument("--sweep", action="store_true",
                        help="the size sweep of benchmarks/sizes.py (ns per output cell by "
                             "image size, beside OpenCV), and stop")
    args = parser.parse_args(argv)
    if args.sweep:
        import sizes
        sizes.main(["--threads", args.threads, "--repeats", str(args.repeats or 5)]
                   + (["--sizes", *map(str, args.sizes)] if args.sizes else [])
                   + (["--versus", args.versus] if args.versus else []))
        return
    if args.calibrate:
        calibrate(args.repeats or 5)
        return
    if args.designs:
        designs(args.repeats or 7)
        return
    if args.operations or args.versus:
        other = load_package(args.versus) if args.versus else None
        run_operations(args.repeats or 7, other)
        if other is not None:
            run_versus_filters(args.sizes or [1024], args.repeats or 7, other)
        return
    try:
        thread_counts = sorted({int(n) for n in args.threads.split(",")})
    except ValueError:
        parser.error(f"--threads must be comma-separated positive integers, got {args.threads!r}")
    if min(thread_counts) < 1:
        parser.error(f"--threads must be comma-separated positive integers, got {args.threads!r}")
    sizes = args.sizes or ([1024] if args.quick else [1024, 2048])
    repeats = args.repeats or (5 if args.quick else 7)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"({driver.cores()} usable); Python {platform.python_version()}, "
          f"NumPy {np.__version__}"
          + "".join(f", {m.__name__.split('.')[0]} {getattr(m, '__version__', '')}"
                    for m in (cv2, torch) if m is not None)
          + f"; threads {','.join(map(str, thread_counts))}; load average "
          + load_average(), flush=True)
    rows = []
    run_loops(rows)
    for case in cases(sizes):
        run_case(*case, thread_counts, repeats, rows, not args.no_paths)
    run_photo(thread_counts, repeats, rows)
    print()
    print(ratio_table(rows))
    print()
    print(summary(rows))
    print(f"load average at the end: {load_average()} (other programs' threads take turns "
          f"with ours on the same cores: figures from a busy machine are not comparable)")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows) + "\n\n" + ratio_table(rows) + "\n\n"
                                       + summary(rows) + "\n")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
