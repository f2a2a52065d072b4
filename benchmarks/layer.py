"""Benchmark: the CNN layer against PyTorch on the CPU, side by side in one process.

    python benchmarks/layer.py            # every case, 15 rounds, BLAS at 1 thread and at its default
    python benchmarks/layer.py --quick    # the ResNet layer only, 7 rounds
    python benchmarks/layer.py --threads 1 --cpu-time   # one thread each, by CPU time

The cases: a ResNet layer (N=8, 64 -> 64 channels, 56 x 56, 3 x 3,
padding 1, float32) forward (``conv2d``, which takes Winograd's
``method='winograd'`` there) and backward (``conv2d_backward`` against
autograd's ``backward`` of ``F.conv2d``, which also gives the three
gradients); the same layer depthwise (groups=64); a strided layer; and a
decoder's transposed convolution (64 -> 32 channels, 28 -> 56, 4 x 4,
stride 2). Before timing, each result is checked against PyTorch's. The
layer forward also times the stacked products (``method='matmul'``),
Winograd's F(4 x 4, 3 x 3) (``settings.using(winograd_outputs=4)``, which
float32 takes only when asked for: its rounding is larger) and
the floor of the direct sums through BLAS: the layer's one im2col product,
(N * 56 * 56, 576) @ (576, 64), alone on our threads.

Timing: the contenders of a case run in rounds, interleaved, in an order
that rotates from round to round, so that drift in the machine's speed falls
on all of them alike; the table gives medians, their ratio ours / PyTorch
(below 1: we are faster), and the median of the ratios within a round
("paired": the two timed back to back, which a busy machine disturbs
least). Autograd's backward is timed alone: the forward
pass that builds its graph runs outside the clock.

Throughput: GMAC/s counts the multiply-adds of the layer
(N * C_out * H_out * W_out * C_in / groups * kh * kw; twice that backward),
set against the machine's measured peak: the GMAC/s of one large float32
``np.matmul`` (2048 x 2048), under the same BLAS thread setting.

Threads: ours use ``driver.threads()`` Python threads, each running BLAS on
one thread (``driver.single_threaded_blas``, through threadpoolctl); PyTorch uses
``torch.get_num_threads()``. Everything runs twice: once with BLAS limited to
one thread for the whole process (``threadpoolctl.threadpool_limits(1)``),
once at BLAS's default; the second run adds "ours, BLAS threads not limited",
with the driver's limit switched off, to show why it is there.
"""
import argparse
import os

# OpenMP's idle worker threads (PyTorch's) spin for a while after each call
# by default, taking the cores from whatever runs next. Passive waiting puts
# them to sleep at once. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import contextlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from convolution import (conv2d, conv2d_backward,  # noqa: E402
                         conv_transpose2d, driver, settings)

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("benchmarks/layer.py compares with PyTorch: pip install torch")
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    sys.exit("benchmarks/layer.py sets BLAS's threads with threadpoolctl: pip install threadpoolctl")


def race(contenders, rounds):
    """{name: seconds of each round}: each contender returns the seconds it took.

    The rounds interleave the contenders, in an order that rotates from round
    to round.
    """
    names = list(contenders)
    times = {name: [] for name in names}
    for name in names:              # warm-up: pools, arenas, oneDNN's kernels
        contenders[name]()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(contenders[name]())
    return times


#: The clock: wall time, or with --cpu-time the process's CPU time.
clock = time.perf_counter


def clocked(function):
    """A contender that times ``function()`` whole."""
    def run():
        start = clock()
        function()
        return clock() - start
    return run


def matmul_peak(rounds=5):
    """GMAC/s of a 2048 x 2048 float32 np.matmul: the machine's peak for this BLAS setting."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = min(clocked(lambda: a @ a)() for _ in range(rounds))
    return 2048 ** 3 / best / 1e9


def layer_case(n, c_in, c_out, size, k, stride=1, padding=1, groups=1, dtype=np.float32):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c_in, size, size), dtype=dtype)
    w = rng.standard_normal((c_out, c_in // groups, k, k), dtype=dtype)
    b = rng.standard_normal(c_out, dtype=dtype)
    out_size = (size + 2 * padding - k) // stride + 1
    macs = n * c_out * out_size ** 2 * (c_in // groups) * k * k
    return x, w, b, dict(stride=stride, padding=padding, groups=groups), macs


def check(ours, theirs, scale):
    for a, t in zip(ours, theirs):
        error = float(np.abs(a - t.detach().numpy()).max())
        if error > 1e-4 * scale:
            raise AssertionError(f"results differ from PyTorch's by {error}")


def product_floor(x, w, params):
    """A contender: the layer's multiply-adds as one im2col product, on our threads, alone.

    The (N * H_out * W_out, C_in * kh * kw) @ (C_in * kh * kw, C_out) product
    of a layer without groups, its rows shared by ``driver.threads()``
    threads (BLAS on one thread each, as ours run): the floor of any design
    that does the layer's direct sums through BLAS, copies aside. The
    im2col matrix is built once, outside the clock.
    """
    n, c, h, width = x.shape
    out, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    rows = n * ((h + 2 * params["padding"] - kh) // params["stride"] + 1) ** 2
    columns = np.random.default_rng(4).standard_normal((rows, c * kh * kw), dtype=x.dtype)
    weights = np.ascontiguousarray(w.reshape(out, -1).T)
    result = np.empty((rows, out), x.dtype)
    threads = driver.threads()
    bounds = np.linspace(0, rows, threads + 1).astype(int)

    def part(arena, index):
        np.matmul(columns[bounds[index]:bounds[index + 1]], weights,
                  out=result[bounds[index]:bounds[index + 1]])

    def run():
        with driver.single_threaded_blas():
            driver.run(part, driver.Plan([(i,) for i in range(threads)], threads, 0.0))
    return clocked(run)


def with_settings(function, **changes):
    """``function`` run under ``settings.using(**changes)``."""
    def run():
        with settings.using(**changes):
            return function()
    return run


def forward_case(x, w, b, params, unlimited, floor=False):
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    check([conv2d(x, w, bias=b, **params)], [F.conv2d(tx, tw, tb, **params)],
          float(np.abs(w).sum(axis=(1, 2, 3)).max() * np.abs(x).max()))
    tx_last = tx.contiguous(memory_format=torch.channels_last)
    tw_last = tw.contiguous(memory_format=torch.channels_last)
    contenders = {
        "ours": clocked(lambda: conv2d(x, w, bias=b, **params)),
        "torch": clocked(lambda: F.conv2d(tx, tw, tb, **params)),
        "torch channels_last": clocked(lambda: F.conv2d(tx_last, tw_last, tb, **params)),
    }
    if floor:       # the layer's other designs, and the floor of the direct sums
        contenders["ours, method='matmul'"] = clocked(
            lambda: conv2d(x, w, bias=b, method="matmul", **params))
        contenders["ours, winograd_outputs=4"] = clocked(with_settings(
            lambda: conv2d(x, w, bias=b, **params), winograd_outputs=4))
        contenders["one im2col product alone"] = product_floor(x, w, params)
    if unlimited:
        contenders["ours, BLAS threads not limited"] = unlimited(
            clocked(lambda: conv2d(x, w, bias=b, **params)))
    return contenders


def backward_case(x, w, b, params, unlimited):
    grad = np.random.default_rng(2).standard_normal(conv2d(x, w, **params).shape,
                                                    dtype=x.dtype)
    tx, tw, tb, tgrad = (torch.from_numpy(a) for a in (x, w, b, grad))

    def torch_backward():
        leaves = [t.detach().clone().requires_grad_() for t in (tx, tw, tb)]
        out = F.conv2d(*leaves, **params)          # builds the graph, off the clock
        start = clock()
        out.backward(tgrad)
        elapsed = clock() - start
        torch_backward.grads = [leaf.grad for leaf in leaves]
        return elapsed

    torch_backward()
    check(conv2d_backward(grad, x, w, **params), torch_backward.grads,
          float(np.abs(grad).sum() * max(np.abs(x).max(), np.abs(w).max())))
    contenders = {"ours": clocked(lambda: conv2d_backward(grad, x, w, **params)),
                  "torch": torch_backward}
    if unlimited:
        contenders["ours, BLAS threads not limited"] = unlimited(
            clocked(lambda: conv2d_backward(grad, x, w, **params)))
    return contenders


def transposed_case(unlimited):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 64, 28, 28), dtype=np.float32)
    w = rng.standard_normal((64, 32, 4, 4), dtype=np.float32)
    b = rng.standard_normal(32, dtype=np.float32)
    params = dict(stride=2, padding=1)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    check([conv_transpose2d(x, w, bias=b, **params)], [F.conv_transpose2d(tx, tw, tb, **params)],
          float(np.abs(w).sum() * np.abs(x).max()))
    contenders = {"ours": clocked(lambda: conv_transpose2d(x, w, bias=b, **params)),
                  "torch": clocked(lambda: F.conv_transpose2d(tx, tw, tb, **params))}
    if unlimited:
        contenders["ours, BLAS threads not limited"] = unlimited(
            clocked(lambda: conv_transpose2d(x, w, bias=b, **params)))
    return contenders, 8 * 64 * 28 * 28 * 32 * 16


def without_blas_limit(contender):
    """The contender with the driver's BLAS limit (driver.single_threaded_blas) off for its runs."""
    def run():
        with settings.using(limit_blas=False):
            return contender()
    return run


def cases(quick, unlimited):
    layer = layer_case(8, 64, 64, 56, 3)
    yield "layer forward (8, 64->64, 56x56, 3x3, pad 1)", forward_case(*layer[:4], unlimited,
                                                                         floor=True), layer[4]
    yield "layer backward (x, w, b gradients)", backward_case(*layer[:4], unlimited), 2 * layer[4]
    if quick:
        return
    depthwise = layer_case(8, 64, 64, 56, 3, groups=64)
    yield "depthwise forward (groups=64)", forward_case(*depthwise[:4], unlimited), depthwise[4]
    yield "depthwise backward", backward_case(*depthwise[:4], unlimited), 2 * depthwise[4]
    strided = layer_case(8, 64, 128, 56, 3, stride=2)
    yield "strided forward (64->128, stride 2)", forward_case(*strided[:4], unlimited), strided[4]
    yield "strided backward", backward_case(*strided[:4], unlimited), 2 * strided[4]
    contenders, macs = transposed_case(unlimited)
    yield "transposed (64->32, 28->56, 4x4, stride 2)", contenders, macs


def run(label, blas_limit, quick, rounds):
    limit = threadpool_limits(1, user_api="blas") if blas_limit else contextlib.nullcontext()
    with limit:
        blas = [f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()
                if i["user_api"] == "blas"]
        peak = matmul_peak()
        print(f"\n### {label}: BLAS {', '.join(blas)} thread(s); matmul peak {peak:.1f} GMAC/s "
              f"(float32 2048^3)\n")
        print("| case | ours (ms) | torch (ms) | ours / torch | paired | ours GMAC/s | "
              "% of peak | other contenders (ms) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, contenders, macs in cases(quick, None if blas_limit else without_blas_limit):
            times = race(contenders, rounds)
            paired = statistics.median(a / b for a, b in zip(times["ours"], times["torch"]))
            medians = {k: statistics.median(v) for k, v in times.items()}
            ours, theirs = medians.pop("ours"), medians.pop("torch")
            others = "; ".join(f"{k} {v * 1e3:.1f}" for k, v in medians.items())
            print(f"| {name} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ours / theirs:.2f} | "
                  f"{paired:.2f} | {macs / ours / 1e9:.1f} | {100 * macs / ours / 1e9 / peak:.0f} "
                  f"| {others} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ResNet layer only, 7 rounds")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 15, --quick 7)")
    parser.add_argument("--threads", type=int,
                        help="threads for both (CONVOLUTION_THREADS and torch.set_num_threads); "
                             "default: all the cores")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock: with "
                             "--threads 1, what other processes take from a busy machine then "
                             "counts for neither contender")
    args = parser.parse_args(argv)
    rounds = args.rounds or (7 if args.quick else 15)
    if args.cpu_time:
        global clock
        clock = time.process_time
    if args.threads:
        os.environ["CONVOLUTION_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; NumPy "
          f"{np.__version__}, PyTorch {torch.__version__}; our threads {driver.threads()}, "
          f"torch's {torch.get_num_threads()}; medians of {rounds} interleaved rounds of "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    run("BLAS at 1 thread", True, args.quick, rounds)
    run("BLAS at its default", False, args.quick, rounds)


if __name__ == "__main__":
    main()
