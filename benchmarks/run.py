"""Benchmark: conv2d's default path against every peer installed, side by side.

    python benchmarks/run.py            # every case: 1024, 2048 and 4096 pixels a side
    python benchmarks/run.py --quick    # 1024 a side only, fewer repeats: under a minute

Every case runs in this one process, on the same data, for ``conv2d`` (method
'auto') and each installed peer: ``scipy.ndimage.correlate``,
``scipy.signal.correlate2d`` (and ``oaconvolve`` for large kernels),
``cv2.filter2D`` and ``torch.nn.functional.conv2d`` on the CPU. Peers get the
same semantics: zero borders of ``span // 2`` cells, a dilated kernel with
zeros inserted between its taps, and the full result subsampled for stride
(PyTorch takes stride and dilation natively). Before timing, each peer's
result is checked against ours. Times are medians of several runs; the table
gives the peer's time divided by ours (above 1: we are faster) and our
throughput in GMAC/s (useful multiply-adds, kh*kw per output cell).

The table goes to stdout (and ``--markdown FILE``); the plot to
``files/benchmark.png``.
"""
import argparse
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

from convolution import conv2d  # noqa: E402  (the path above must come first)
from convolution.engine import choose_method  # noqa: E402
from convolution.strips import threads  # noqa: E402
from convolution.shapes import conv_geometry  # noqa: E402

#: Peers slower than this on one run are timed once, not several times.
SLOW_SECONDS = 2.0
#: Peers whose estimated time exceeds this are not run at all (shown as "-", as are failures).
SKIP_SECONDS = 60.0


def optional(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


cv2 = optional("cv2")
ndimage = optional("scipy.ndimage")
signal = optional("scipy.signal")
torch = optional("torch")


def timed(function, repeats):
    """Median wall time of ``function()`` over ``repeats`` runs, after one warm-up run."""
    return race({"": function}, repeats)[""]


def race(contenders, repeats):
    """{name: (median seconds, result)} for functions timed side by side.

    Each function runs once to warm up (and to give its result); then the
    rounds interleave them, in an order that rotates from round to round, so
    that drift in the machine's speed falls on all of them alike. A function
    slower than SLOW_SECONDS is not run again: its first time stands.
    """
    first, results, times = {}, {}, {}
    for name, function in contenders.items():
        start = time.perf_counter()
        try:
            results[name] = function()
        except (MemoryError, RuntimeError) as error:   # PyTorch's im2col can ask for GBs
            if name == "ours":
                raise
            results[name] = error
        first[name] = time.perf_counter() - start
        times[name] = []
    again = [name for name in contenders
             if first[name] <= SLOW_SECONDS and not isinstance(results[name], Exception)]
    for round_ in range(repeats):
        for k in range(len(again)):
            name = again[(k + round_) % len(again)]
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: (None if isinstance(results[name], Exception)
                   else statistics.median(times[name]) if times[name] else first[name],
                   results[name])
            for name in contenders}


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


def estimate(name, image, kernel, stride, dilation):
    """A rough time, in seconds, for the peers that can take minutes, so as to skip them.

    The direct peers cost a multiply-add per tap of the dilated kernel (zeros
    included) per pixel; PyTorch's float64 CPU path unfolds the image into a
    matrix kh*kw times its size (im2col) and runs far slower than its float32.
    """
    taps = dilated(kernel, dilation).size
    if name in ("ndimage.correlate", "signal.correlate2d"):
        return image.size * taps / 1.5e9
    if name == "torch.conv2d" and image.dtype == np.float64:
        outputs = image.size // stride ** 2
        if outputs * kernel.size * 8 > 4 * 2 ** 30:      # the unfolded matrix alone
            return math.inf
        return outputs * kernel.size / 5e7
    return 0.0


def run_case(label, size, dtype, kernel, stride, dilation, repeats, rows):
    rng = np.random.default_rng(size)
    image = rng.random((size, size)).astype(dtype)
    found, padding = peers(image, kernel, stride, dilation)
    geometry = conv_geometry(image.shape, kernel.shape, stride, dilation, padding)
    method = choose_method(tuple(n + 2 * padding for n in image.shape), kernel, geometry)
    skipped = [name for name in found
               if estimate(name, image, kernel, stride, dilation) > SKIP_SECONDS]
    contenders = {"ours": lambda: conv2d(image, kernel, stride, dilation, padding)}
    contenders.update((name, f) for name, f in found.items() if name not in skipped)
    timings = race(contenders, repeats)
    our_time, expected = timings.pop("ours")
    scale = float(np.abs(kernel).sum() * np.abs(image).max())
    tolerance = 64 * np.finfo(dtype).eps * scale
    for name, (_, result) in timings.items():
        if isinstance(result, Exception):
            print(f"  {name} failed on {label} {size}: {str(result).splitlines()[0][:120]}")
            continue
        error = float(np.max(np.abs(np.asarray(result, dtype=np.float64) - expected)))
        if result.shape != expected.shape or error > tolerance:
            raise SystemExit(f"{name} disagrees with conv2d on {label} {size} "
                             f"{np.dtype(dtype).name}: shape {result.shape} vs "
                             f"{expected.shape}, max error {error:.3g}")
    row = {"case": label, "size": size, "dtype": np.dtype(dtype).name, "method": method,
           "ours": our_time, "gmacs": expected.size * kernel.size / our_time / 1e9,
           "peers": {name: timings[name][0] if name in timings else None for name in found}}
    rows.append(row)
    print(format_row(row), flush=True)


def run_photo(repeats, rows):
    """A 1920x1080 uint8 RGB photo through apply_filter_to_image, 9x9 Gaussian."""
    try:
        from convolution import apply_filter_to_image
    except ImportError:
        return
    photo = HERE.parent / "files" / "grace_hopper.jpg"
    imageio = optional("imageio.v3")
    if imageio is None or not photo.exists():
        return
    small = imageio.imread(photo)[..., :3]
    # Nearest-neighbour enlargement to full HD: a photo's content at a photo's size.
    rows_index = np.arange(1080) * small.shape[0] // 1080
    cols_index = np.arange(1920) * small.shape[1] // 1920
    image = np.ascontiguousarray(small[rows_index][:, cols_index])
    kernel = gaussian(9, np.float64)
    contenders = {"ours": lambda: apply_filter_to_image(image, kernel)}
    if cv2 is not None:
        contenders["cv2.filter2D"] = lambda: cv2.filter2D(image, -1, kernel,
                                                          borderType=cv2.BORDER_REFLECT_101)
    if ndimage is not None:
        def ndimage_photo():
            channels = [ndimage.correlate(image[..., c].astype(np.float64), kernel,
                                          mode="mirror") for c in range(3)]
            return np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8)
        contenders["ndimage.correlate"] = ndimage_photo
    timings = race(contenders, repeats)
    our_time, expected = timings.pop("ours")
    for name, (_, result) in timings.items():
        if np.max(np.abs(result.astype(int) - expected.astype(int))) > 1:
            raise SystemExit(f"{name} disagrees with apply_filter_to_image on the photo")
    row = {"case": "photo 1920x1080 RGB, gaussian 9x9", "size": 1920, "dtype": "uint8",
           "method": "auto", "ours": our_time,
           "gmacs": expected.size * kernel.size / our_time / 1e9,
           "peers": {name: t for name, (t, _) in timings.items()}}
    rows.append(row)
    print(format_row(row), flush=True)


def run_loops(rows):
    """The reference loops against 'auto' on the case issue 2 names: 256x256, 5x5, float64."""
    rng = np.random.default_rng(1)
    image, kernel = rng.random((256, 256)), rng.random((5, 5))
    timings = race({"ours": lambda: conv2d(image, kernel, padding="same"),
                    "method='loops'": lambda: conv2d(image, kernel, padding="same",
                                                     method="loops")}, 3)
    (ours, result), (loops, expected) = timings["ours"], timings["method='loops'"]
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)
    row = {"case": "random 5x5 (vs method='loops')", "size": 256, "dtype": "float64",
           "method": "auto", "ours": ours, "gmacs": expected.size * 25 / ours / 1e9,
           "peers": {"method='loops'": loops}}
    rows.append(row)
    print(format_row(row), flush=True)


PEER_ORDER = ["cv2.filter2D", "ndimage.correlate", "signal.correlate2d", "signal.oaconvolve",
              "torch.conv2d", "method='loops'"]


def format_row(row):
    cells = [f"{row['case']:<36}", f"{row['size']:>5}", f"{row['dtype']:<8}",
             f"{row['method']:<10}", f"{row['ours'] * 1e3:9.2f} ms", f"{row['gmacs']:6.2f}"]
    for name in PEER_ORDER:
        if name in row["peers"]:
            t = row["peers"][name]
            cells.append(f"{name}: " + ("-" if t is None else f"{t / row['ours']:.2f}x"))
    return "  ".join(cells)


def markdown(rows):
    names = [n for n in PEER_ORDER if any(n in r["peers"] for r in rows)]
    lines = ["| case | size | dtype | path | ours (ms) | GMAC/s | " + " | ".join(names) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        ratios = []
        for n in names:
            t = r["peers"].get(n, "")
            ratios.append("" if t == "" else "-" if t is None else f"{t / r['ours']:.2f}")
        lines.append(f"| {r['case']} | {r['size']} | {r['dtype']} | {r['method']} | "
                     f"{r['ours'] * 1e3:.2f} | {r['gmacs']:.2f} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def summary(rows):
    """The figures the targets are stated in."""
    lines = []
    single = [r for r in rows if r["dtype"] != "uint8" and "loops" not in r["case"]]
    for name in ("ndimage.correlate", "signal.correlate2d", "torch.conv2d", "cv2.filter2D"):
        ratios = [r["peers"][name] / r["ours"] for r in single if r["peers"].get(name)]
        if ratios:
            lines.append(f"{name}: peer/ours min {min(ratios):.2f}, median "
                         f"{statistics.median(ratios):.2f}, max {max(ratios):.2f} "
                         f"over {len(ratios)} cases")
    cv_f32 = [r["peers"]["cv2.filter2D"] / r["ours"] for r in single
              if r["dtype"] == "float32" and r["peers"].get("cv2.filter2D")]
    if cv_f32:
        lines.append(f"cv2.filter2D, float32 cases: median ratio {statistics.median(cv_f32):.2f} "
                     f"(OpenCV is {1 / statistics.median(cv_f32):.2f}x faster than us in the median)")
    strided = [r for r in single if "s2 d2" in r["case"]]
    if strided:
        worst = min(min(t / r["ours"] for t in r["peers"].values() if t) for r in strided)
        lines.append(f"stride 2 / dilation 2 cases: slowest peer ratio {worst:.2f}")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [r for r in rows if r["dtype"] != "uint8" and "loops" not in r["case"]]
    sizes = sorted({r["size"] for r in single})
    fig, axes = plt.subplots(len(sizes), 2, figsize=(13, 3.2 * len(sizes) + 0.8), squeeze=False)
    for row_axes, size in zip(axes, sizes):
        for ax, dtype in zip(row_axes, ("float32", "float64")):
            sel = [r for r in single if r["size"] == size and r["dtype"] == dtype]
            names = [n for n in PEER_ORDER if any(r["peers"].get(n) for r in sel)]
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
            ax.set_title(f"{size}x{size} {dtype}", fontsize=10)
            ax.set_ylabel("peer time / our time")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("conv2d(method='auto') against peers: above 1, conv2d is faster", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def calibrate(repeats):
    """Measure the constants of engine.py's cost model on this machine.

    Per-cell and per-call costs on one thread, then what each path gains from
    the other threads.

    Each constant is a slope between two runs that differ in one thing only,
    so that what the two runs share (fetching, Python overhead) cancels out.
    """
    from convolution import engine
    os.environ["CONVOLUTION_THREADS"] = "1"
    rng = np.random.default_rng(2)
    image = rng.random((1024, 1024))
    small, large = rng.random((3, 3)), rng.random((9, 9))

    def seconds(method, kernel, x=image, **params):
        return timed(lambda: conv2d(x, kernel, method=method, **params), repeats)[0]

    cells = 1024 * 1024 * 1e-9      # in units that give nanoseconds per cell
    flat = (seconds("polyphase", large) - seconds("polyphase", small)) / (81 - 9) / cells
    strided = (seconds("direct", large) - seconds("direct", small)) / (81 - 9) / cells
    # Fetching: a 1 x 1 kernel is one fetch of the input and one multiply.
    fetch = max(seconds("polyphase", rng.random((1, 1))) / cells - flat, 0.0)
    tiny = rng.random((4, 4))
    call = (seconds("polyphase", large, tiny, padding=4)
            - seconds("polyphase", small, tiny, padding=1)) / (2 * (81 - 9)) * 1e9
    fft_plan = engine._fft_plan((1024, 1024), engine._phases(engine._taps(large), (1, 1), (1, 1)))
    (length_h, tile_h, _), (length_w, tile_w, _) = fft_plan
    tiles = math.ceil(1024 / tile_h) * math.ceil(1024 / tile_w)
    n = length_h * length_w
    fft = seconds("fft", large, padding=4) * 1e9 / (tiles * n * math.log2(n))
    eight = rng.random((8, 8))
    spectrum = np.fft.rfft2(eight)
    fft_call = timed(lambda: (np.fft.rfft2(eight), np.fft.irfft2(spectrum, s=(8, 8))),
                     repeats * 20)[0] / 2 * 1e9
    # Parallel efficiency: the same large case on one thread and on all of them.
    efficiency = {}
    workers = os.cpu_count() or 1
    big = rng.random((2048, 2048))
    for method, kernel in (("direct", small), ("polyphase", large), ("separable",
                           np.outer(np.hanning(9), np.hanning(9))), ("fft", large)):
        times = []
        for n in (1, workers):
            os.environ["CONVOLUTION_THREADS"] = str(n)
            times.append(seconds(method, kernel, big, padding=kernel.shape[0] // 2))
        efficiency[method] = round((times[0] / times[1] - 1) / max(workers - 1, 1), 2)
    os.environ["CONVOLUTION_THREADS"] = "1"
    print("# Cost model constants measured on this machine, for engine.py:")
    for name, value in (("COST_FLAT", flat), ("COST_STRIDED", strided), ("COST_FETCH", fetch),
                        ("COST_FFT", fft), ("COST_CALL", call), ("COST_FFT_CALL", fft_call)):
        print(f"{name} = {value:.3g}")
    print(f"PARALLEL_EFFICIENCY = {efficiency}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1024x1024 only and fewer repeats (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sizes (default 1024 2048 4096)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 5)")
    parser.add_argument("--plot", default=str(HERE.parent / "files" / "benchmark.png"),
                        help="where to write the plot ('' for none)")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the constants of the cost model 'auto' uses, and stop")
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate(args.repeats or 5)
        return
    sizes = args.sizes or ([1024] if args.quick else [1024, 2048, 4096])
    repeats = args.repeats or (3 if args.quick else 5)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{threads()} threads; Python {platform.python_version()}, NumPy {np.__version__}"
          + "".join(f", {m.__name__.split('.')[0]} {getattr(m, '__version__', '')}"
                    for m in (cv2, torch) if m is not None), flush=True)
    if torch is not None:
        torch.set_num_threads(os.cpu_count())
    rows = []
    run_loops(rows)
    for case in cases(sizes):
        run_case(*case, repeats, rows)
    run_photo(repeats, rows)
    print()
    print(summary(rows))
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows) + "\n\n" + summary(rows) + "\n")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
