"""conv1d and conv3d against np.correlate, scipy.ndimage and PyTorch, on one thread each.

Run from the repository's root: ``python benchmarks/nd.py`` (``--quick`` for
small sizes, ``--rounds N`` for the rounds).

Every contender runs on one thread: ours through ``CONVOLUTION_THREADS=1``,
BLAS (ours and NumPy's) through threadpoolctl, PyTorch through
``torch.set_num_threads(1)``; np.correlate and ndimage use one thread anyway.
Each contender's result is first checked against ours (on the cells both
compute: np.correlate and torch return the 'valid' part, ndimage the whole
signal or volume, of which the 'valid' part is compared). Then the
contenders are timed in turns, one call each per round, in the same process
on the same data, in orders where each contender follows every other as
often (a call inherits the caches of the one before it), and the table
shows the median of the rounds and the
ratio of ours to each peer (below 1: ours is faster), with the targets
the project holds itself to. The clock is the process's CPU time by default
(``--clock cpu``): with one thread each it is the time the call ran, and
other programs sharing the cores do not add to it as they do to the wall
clock (``--clock wall``).

- 1-D, float64, 10**6 samples, k = 7, 31, 101: at most 0.3 x ndimage's
  correlate1d and torch's conv1d; at most 0.5 x np.correlate for k >= 31,
  within 1.5 x of it for k = 7.
- 3-D, float32, 128**3 with 3 x 3 x 3 and 96**3 with 5 x 5 x 5: at most
  0.3 x ndimage's correlate and torch's conv3d.
- A small 3-D CNN layer (N = 2, 8 -> 8 channels, 32**3, 3 x 3 x 3, padding
  1, float32, with a bias): ``conv3d``, ``conv_transpose3d`` and
  ``conv3d_backward`` (the three gradients) beside torch's ``conv3d``,
  ``conv_transpose3d`` and autograd's backward of ``conv3d`` (its graph
  built outside the clock), for information: no target.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["CONVOLUTION_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from convolution import conv1d, conv3d, conv3d_backward, conv_transpose3d  # noqa: E402


def optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


threadpoolctl = optional("threadpoolctl")
torch = optional("torch")
try:
    from scipy import ndimage
except ImportError:
    ndimage = None


def contenders_1d(x, k):
    """(name, function, the part of its result that is the 'valid' correlation)."""
    valid = slice(None)
    found = [("ours conv1d", lambda: conv1d(x, k), valid),
             ("np.correlate", lambda: np.correlate(x, k, "valid"), valid)]
    if ndimage is not None:
        # correlate1d centres the kernel: output i reads i - k//2 ... ; its 'valid' part
        # starts at k // 2 (origin 0) and has len(x) - k + 1 cells.
        half = len(k) // 2
        found.append(("ndimage.correlate1d",
                      lambda: ndimage.correlate1d(x, k, mode="constant"),
                      slice(half, half + len(x) - len(k) + 1)))
    if torch is not None:
        xt, kt = torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None]
        found.append(("torch conv1d", lambda: torch.nn.functional.conv1d(xt, kt)[0, 0].numpy(),
                      valid))
    return found


def contenders_3d(x, k):
    found = [("ours conv3d", lambda: conv3d(x, k), (slice(None),) * 3)]
    if ndimage is not None:
        half = tuple(n // 2 for n in k.shape)
        found.append(("ndimage.correlate", lambda: ndimage.correlate(x, k, mode="constant"),
                      tuple(slice(h, h + n - m + 1) for h, n, m in zip(half, x.shape, k.shape))))
    if torch is not None:
        xt, kt = torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None]
        found.append(("torch conv3d",
                      lambda: torch.nn.functional.conv3d(xt, kt)[0, 0].numpy(),
                      (slice(None),) * 3))
    return found


def contenders_layer(x, w, b, g):
    """The 3-D layer forward, transposed and backward, ours and torch's, as (title, contenders).

    Each contender returns arrays to compare: the output, or the three
    gradients stacked flat.
    """
    def flat(*arrays):
        return np.concatenate([np.asarray(a).ravel() for a in arrays])

    cases = [
        ("3-D layer conv3d", [("ours conv3d", lambda: conv3d(x, w, padding=1, bias=b),
                               slice(None))]),
        ("3-D layer conv_transpose3d",
         [("ours conv_transpose3d", lambda: conv_transpose3d(g, w, padding=1, bias=b),
           slice(None))]),
        ("3-D layer conv3d_backward",
         [("ours conv3d_backward", lambda: flat(*conv3d_backward(g, x, w, padding=1)),
           slice(None))]),
    ]
    if torch is not None:
        F = torch.nn.functional
        xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
        cases[0][1].append(("torch conv3d", lambda: F.conv3d(xt, wt, bt, padding=1).numpy(),
                            slice(None)))
        cases[1][1].append(("torch conv_transpose3d",
                            lambda: F.conv_transpose3d(gt, wt, bt, padding=1).numpy(),
                            slice(None)))
        leaves = [t.clone().requires_grad_() for t in (xt, wt, bt)]
        graph = F.conv3d(leaves[0], leaves[1], leaves[2], padding=1)

        def autograd():
            grads = torch.autograd.grad(graph, leaves, gt, retain_graph=True)
            return flat(*(grad.numpy() for grad in grads))

        cases[2][1].append(("torch autograd", autograd, slice(None)))
    return cases


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(contenders, rounds, tolerance, clock=time.process_time):
    """Check each contender against the first, then time them in turns; medians in ms."""
    reference = contenders[0][1]()
    for name, run, part in contenders[1:]:
        got = run()[part]
        if got.shape != reference.shape or not np.allclose(got, reference, rtol=tolerance,
                                                           atol=tolerance):
            raise SystemExit(f"{name} disagrees with ours: largest difference "
                             f"{np.max(np.abs(got - reference)) if got.shape == reference.shape else got.shape}")
    times = {name: [] for name, _, _ in contenders}
    orders = balanced_orders(len(contenders))
    for round_ in range(rounds):
        # Each contender follows each of the others as often (it inherits the memory and
        # caches of the one before it: a call after one that swept tens of MiB finds its
        # input out of the cache).
        for index in orders[round_ % len(orders)]:
            name, run, _ = contenders[index]
            start = clock()
            run()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def balanced_orders(n):
    """Orders of ``n`` contenders in which each follows every other equally often.

    Williams' design (a Latin square balanced for the one before): ``n``
    orders for even ``n``, those and their reverses for odd ``n``.

    >>> balanced_orders(4)
    [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    >>> balanced_orders(3)
    [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]]
    """
    first = [(j + 1) // 2 if j % 2 else (n - j // 2) % n for j in range(n)]
    orders = [[(i + r) % n for i in first] for r in range(n)]
    return orders if n % 2 == 0 else orders + [order[::-1] for order in orders]


def report(title, medians, targets):
    ours_name = next(iter(medians))
    ours = medians[ours_name]
    print(f"\n{title}")
    print(f"  {ours_name:<22} {ours:8.2f} ms")
    verdicts = []
    for name, ms in list(medians.items())[1:]:
        ratio = ours / ms
        limit = targets.get(name)
        mark = "" if limit is None else (
            f"  [{'ok' if ratio <= limit else 'NO'}] target <= {limit:g}")
        print(f"  {name:<22} {ms:8.2f} ms   ours / it = {ratio:5.2f}{mark}")
        verdicts.append(limit is None or ratio <= limit)
    return verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                        help="the process's CPU time (default) or the wall clock")
    args = parser.parse_args(argv)
    if torch is not None:
        torch.set_num_threads(1)
    limits = (threadpoolctl.threadpool_limits(1) if threadpoolctl is not None else None)
    rng = np.random.default_rng(0)
    length = 10 ** 4 if args.quick else 10 ** 6
    sides = ((16, 3), (12, 5)) if args.quick else ((128, 3), (96, 5))
    clock = CLOCKS[args.clock]
    print(f"one thread each; medians of {args.rounds} rounds, {args.clock} time"
          + ("" if threadpoolctl else " (threadpoolctl missing: BLAS threads not limited)"))
    verdicts = []
    try:
        x = rng.standard_normal(length)
        for k in (7, 31, 101):
            kernel = rng.standard_normal(k)
            medians = measure(contenders_1d(x, kernel), args.rounds, 1e-9, clock)
            verdicts += report(f"1-D float64, {length} samples, k = {k}", medians,
                               {"np.correlate": 1.5 if k < 31 else 0.5,
                                "ndimage.correlate1d": 0.3, "torch conv1d": 0.3})
        for side, k in sides:
            volume = rng.standard_normal((side,) * 3).astype(np.float32)
            kernel = rng.standard_normal((k,) * 3).astype(np.float32)
            medians = measure(contenders_3d(volume, kernel), args.rounds, 1e-3, clock)
            verdicts += report(f"3-D float32, {side}^3, kernel {k}x{k}x{k}", medians,
                               {"ndimage.correlate": 0.3, "torch conv3d": 0.3})
        side = 8 if args.quick else 32
        x = rng.standard_normal((2, 8, side, side, side)).astype(np.float32)
        w = rng.standard_normal((8, 8, 3, 3, 3)).astype(np.float32)
        b = rng.standard_normal(8).astype(np.float32)
        g = rng.standard_normal((2, 8, side, side, side)).astype(np.float32)
        for title, contenders in contenders_layer(x, w, b, g):
            medians = measure(contenders, args.rounds, 1e-2, clock)
            report(f"{title}, N=2, 8->8 channels, {side}^3, 3x3x3, float32", medians, {})
    finally:
        if limits is not None:
            limits.restore_original_limits()
    print(f"\ntargets met: {sum(verdicts)} of {len(verdicts)}")


if __name__ == "__main__":
    main()
