"""Blur an image larger than the memory of the workers that filter it.

    python examples/large_image.py                    # 20000 x 20000 float32: 1.6 GB
    python examples/large_image.py --size 2000 --chunk 250 --memory-limit 300MB

A synthetic picture is generated lazily, chunk by chunk, and written to a .npy
file on disk; `apply_filter_to_image` then blurs it as a Dask array on a
`LocalCluster` whose worker processes may each hold only ``--memory-limit``
(Dask pauses a worker at 80 % of it and restarts one at 95 %), and the result
is written, chunk by chunk again, to a second .npy file. Neither image is ever
whole in any process's memory. The script prints Dask's progress bars, the
time of each step, and the peak memory (resident set size) of the workers.

Everything is written into a temporary folder that is removed at the end,
even when the run is interrupted; the blurred image is moved out of it to
``--output`` when that names a file for it.

On a cluster, the one change is the client: ``Client("scheduler-address:8786")``
instead of a `LocalCluster` (the .npy files must then be on storage that all
the workers see).
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
from convolution import apply_filter_to_image, get_kernel  # noqa: E402

#: The blur: a 9 x 9 Gaussian, sigma 2 pixels.
KERNEL = get_kernel("gaussian", size=9, sigma=2.0)


def picture(rows, cols):
    """The synthetic picture's pixels at ``rows``, ``cols``: squares with soft ripples.

    A function of the coordinates alone, so any chunk can be made on its own
    and the whole picture is the same whatever the chunking.
    """
    squares = ((rows // 100 + cols // 100) % 2).astype(np.float32)
    ripples = np.sin(rows * np.float32(0.05)) * np.cos(cols * np.float32(0.03))
    return (0.25 + 0.5 * squares + 0.2 * ripples).astype(np.float32)


def _make_chunk(block_info=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    rows, cols = np.ogrid[r0:r1, c0:c1]
    return picture(rows, cols)


def _read_chunk(path, block_info=None):
    """A chunk of the .npy file at ``path``: each task maps the file and copies its region."""
    region = tuple(slice(start, stop) for start, stop in block_info[None]["array-location"])
    return np.array(np.load(path, mmap_mode="r")[region])


class NpyFile:
    """A .npy file that Dask's tasks write into region by region, from any process.

    Only the path travels to the workers (a NumPy memmap would be pickled
    with all its data); each write maps the file and writes its region.
    """

    def __init__(self, path, shape, dtype):
        np.lib.format.open_memmap(path, mode="w+", shape=shape, dtype=dtype)   # header; sparse
        self.path, self.shape, self.dtype = str(path), shape, np.dtype(dtype)

    def __setitem__(self, region, values):
        out = np.load(self.path, mmap_mode="r+")
        out[region] = values
        out.flush()

    def as_dask_array(self, chunks):
        import dask.array as da
        return da.map_blocks(_read_chunk, self.path, chunks=chunks, dtype=self.dtype,
                             meta=np.empty((0, 0), self.dtype))


def _peak_rss():
    """The peak resident set size of this process, in bytes (None where unknown)."""
    try:
        import resource
    except ImportError:     # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _size(text):
    height, _, width = text.lower().partition("x")
    return int(height), int(width or height)


def run(args, work):
    import dask
    from dask.array import map_blocks, store
    from dask.array.core import normalize_chunks
    from distributed import Client, LocalCluster, progress

    height, width = args.size
    chunks = normalize_chunks(args.chunk, (height, width))
    print(f"image {height} x {width} float32 ({height * width * 4 / 1e9:.2f} GB) in chunks of "
          f"{args.chunk} x {args.chunk}; {args.workers} worker processes of "
          f"{args.threads} thread(s), memory limit {args.memory_limit} each")
    # Dask's scratch files (of the scheduler and of every worker) go into ``work`` too.
    with dask.config.set({"temporary-directory": str(work)}), \
            LocalCluster(n_workers=args.workers, threads_per_worker=args.threads,
                         processes=True, memory_limit=args.memory_limit,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        # 1. The picture, generated chunk by chunk, to disk.
        source = NpyFile(work / "picture.npy", (height, width), np.float32)
        generated = map_blocks(_make_chunk, chunks=chunks, dtype=np.float32,
                               meta=np.empty((0, 0), np.float32))
        start = time.perf_counter()
        written = client.compute(store(generated, source, lock=False, compute=False))
        progress(written)
        written.result()
        print(f"\nwrote the picture in {time.perf_counter() - start:.1f} s")

        # 2. The blur: a Dask array in, a Dask array out; then chunk by chunk to disk.
        blurred = apply_filter_to_image(source.as_dask_array(chunks), KERNEL)
        target = NpyFile(work / "blurred.npy", blurred.shape, blurred.dtype)
        start = time.perf_counter()
        written = client.compute(store(blurred, target, lock=False, compute=False))
        progress(written)
        written.result()
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_rss).values()
        limit = next(iter(client.scheduler_info()["workers"].values()))["memory_limit"]
    if args.output:      # moved only once complete: an interrupted run leaves nothing
        shutil.move(target.path, args.output)
    print(f"\nblurred in {seconds:.1f} s")
    if None not in peaks:
        print(f"peak worker memory: {max(peaks) / 2 ** 20:.0f} MiB (resident set size of the "
              f"largest worker; limit {limit / 2 ** 20:.0f} MiB each, image "
              f"{height * width * 4 / 2 ** 20:.0f} MiB)")
    else:
        print("peak worker memory: not measured on this platform")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=_size, default="20000x20000",
                        help="HxW, or N for N x N (default 20000x20000)")
    parser.add_argument("--chunk", type=int, default=1000,
                        help="side of the square chunks (default 1000: 4 MB of float32)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--memory-limit", default="500MB",
                        help="memory limit of each worker (default 500MB)")
    parser.add_argument("--output", help="keep the blurred image in this .npy file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="large-image-") as work:
        run(args, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
