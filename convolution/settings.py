"""The tuning values of the fast paths and their driver, in one object, read per call.

Strip sizes, the banded path's rows per group, the FFT's tile, the cost
model's constants, the cores the driver may use: every value a plan depends
on is a field of `Settings`. A call reads `current()` once, plans with it, and
the plan carries it (``driver.Plan.settings``) to the strips that run it; the
caches of plans key on it. So changing a value takes effect at the next call,
and nothing is read from a module attribute.

Change them for a block of code with `using`, as ``np.errstate`` and
``threadpoolctl.threadpool_limits`` do, or for the rest of the program with
`configure`. The values are process-wide (the driver's threads read them as
the calling thread does); a block puts back what was there when it ends.

>>> from convolution import settings
>>> with settings.using(strip_bytes=2 ** 16):
...     settings.current().strip_bytes
65536
>>> settings.current().strip_bytes == 2 * 2 ** 20
True

``$CONVOLUTION_THREADS`` in the environment, read at every call, caps the
threads unless ``threads`` is set here.
"""
import contextlib
import dataclasses
import threading
from typing import Optional

__all__ = ["Settings", "current", "using", "configure"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tuning value, with its default. Where each is used says why it has its value."""

    # The driver (driver/strips.py, driver/arena.py, driver/pool.py).
    #: Bytes of working memory (all buffers together) of one strip, at most.
    strip_bytes: int = 2 * 2 ** 20
    #: Strips are kept to 1/threads of the output's size, but never below this.
    min_strip_bytes: int = 2 ** 18
    #: A thread keeps its strips' memory between calls up to this many bytes.
    keep_bytes: int = 8 * 2 ** 20
    #: Threads are taken only where they save this fraction of one thread's time.
    thread_gain: float = 0.25
    #: The cores the driver may use; None: those this process may run on.
    cores: Optional[int] = None
    #: The most threads a call may use; None: ``$CONVOLUTION_THREADS``, or every core.
    threads: Optional[int] = None
    #: Whether BLAS runs on the calling thread only inside the paths (driver/blas.py).
    limit_blas: bool = True

    # The paths (fast/*.py).
    #: Output rows per band of 'banded' (fast/banded.py).
    band_rows: int = 4
    #: Bytes of the shifted rows one product of 'banded' multiplies.
    band_bytes: int = 2 ** 19
    #: Bytes of one group's shifted rows in a tile of 'banded' (its columns follow): half the
    #: L2 cache of the smallest current cores (512 KiB); 416 columns for float32 11x11.
    band_tile_bytes: int = 2 ** 18
    #: 'banded' cuts its strips into tiles only where one group's shifted rows of the whole
    #: width exceed this (the L2 cache of current cores, 1 to 2 MiB): below, tiles add calls.
    band_tile_from: int = 2 ** 20
    #: Whole-width strips read groups' rows straight from the input only where an output row
    #: holds at least this many bytes (fast/banded_rows.py). Measured on one thread, 3 x 3 and
    #: 5 x 5, 'same' and 'full' zero borders, since the image's first and last groups read in
    #: place too: in place as fast as a fetch at 64 and 128 columns (0.97-1.06 times its
    #: time), 1.05-1.1 times faster at 255 float32 columns, 1.1-1.29 from 511.
    in_place_row_bytes: int = 2 ** 8
    #: What products four times `band_bytes` cost more per cell on one thread.
    band_large_cost: float = 1.2
    #: Output columns per block of the separable path's row pass (fast/separable.py).
    separable_block: int = 16
    #: The FFT size of one overlap-save tile along an axis (fast/fft.py).
    fft_tile: int = 320
    #: 'auto' takes the FFT only where it beats every other path by this factor.
    fft_margin: float = 1.25
    #: How much larger than a window's own values an FFT tile's largest may be.
    fft_range: float = 2.0 ** 10
    #: The layer stacks taps until a product's inner dimension would pass this (fast/layer.py).
    stack_depth: int = 1024
    #: Input channels per group from which each tap is a product of its own.
    stack_channels: int = 256
    #: Bytes of one strip of 'winograd' (fast/winograd.py, winograd4.py), at most: its strips
    #: make 50 to 90 NumPy calls each, so they are made larger than ``strip_bytes`` (one image
    #: of 64 -> 64 channels, 56 x 56, float32 is 3 MiB for F(2 x 2), 5 for F(4 x 4); measured,
    #: F(2 x 2) on two threads: 13.5 ms a layer in strips of 4 MiB, 14.5 in strips of 2;
    #: F(4 x 4) on one thread: half images (2.5 MiB) and whole ones within 5%, strips of 20
    #: rows 1.06 to 1.1 times as long).
    winograd_strip_bytes: int = 3 * 2 ** 20
    #: The outputs a tile of 'winograd' computes along each axis: 2 (F(2 x 2, 3 x 3)), 4
    #: (F(4 x 4, 3 x 3)), or None: the one estimated faster in float64, F(2 x 2) in float32
    #: (F(4 x 4)'s float32 rounding is some twenty times the direct sums': fast/winograd4.py).
    winograd_outputs: Optional[int] = None
    #: A layer is weighed as 2-D paths once per pair of channels up to this many pairs
    #: (fast/operations.py) ...
    pair_limit: int = 64
    #: ... and only where its matrix products are estimated to take longer than this (ns).
    pair_floor_ns: float = 5e5
    #: Outputs one product of conv1d's 'fold' computes (fast/fold1d.py): a chunk that
    #: stays in cache with the signal's cells it reads (one core, float64, 10**6 samples:
    #: 32768 (256 KiB) as fast as 65536 and up to 1.05 times faster than 16384 at k = 7, 31,
    #: 101; 262144 took 1.2 times as long at k = 7).
    fold_outputs: int = 32768
    #: conv1d's 'auto' folds signals of at least this many samples; shorter ones go through
    #: conv2d's paths as one row (whose batches of short signals cost fewer calls).
    fold_min_length: int = 4096
    #: Output rows per group of conv3d's 'fold' (fast/depth3d.py): more amortise BLAS's
    #: calls, fewer waste fewer multiply-adds on the band's zeros (one core, float32, 128**3
    #: 3x3x3 and 96**3 5x5x5: 2 rows 1.1 to 1.2 times faster than 1 or 4, 1.3 than 8).
    depth_rows: int = 2
    #: Bytes of input slices one 2-D call of conv3d's sum over depth taps reads (depth.py).
    slice_block_bytes: int = 8 * 2 ** 20

    # The cost model (fast/costs.py, driver/strips.py), in ns, measured with
    # ``python benchmarks/run.py --calibrate``.
    call_ns: float = 1500.0
    handoff_ns: float = 8000.0
    thread_ns: float = 2e6
    flat_ns: float = 0.5
    strided_ns: float = 0.85
    fetch_ns: float = 1.15
    copy_ns: float = 0.7
    mac_ns: float = 0.045
    cache_bytes: float = 2 ** 20
    fft_ns: float = 0.75
    fft_call_ns: float = 55000.0
    #: One small matrix product of a batch, called from NumPy's loop (no Python between).
    product_call_ns: float = 150.0

    def __post_init__(self):
        if self.winograd_outputs not in (None, 2, 4):
            raise ValueError(f"settings.winograd_outputs must be None, 2 or 4, got "
                             f"{self.winograd_outputs!r}")


_current = Settings()
_lock = threading.Lock()


def current():
    """The settings in force now."""
    return _current


def configure(**changes):
    """Change settings for the rest of the program; returns the settings before.

    Raises TypeError naming a field that does not exist.
    """
    global _current
    fields = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise TypeError(f"settings has no field {unknown[0]!r}; the fields are "
                        f"{', '.join(sorted(fields))}")
    with _lock:
        previous = _current
        _current = dataclasses.replace(_current, **changes)
    return previous


@contextlib.contextmanager
def using(**changes):
    """Within the block, the settings changed as given; afterwards, what was there before.

    Blocks nest. Examples: ``using(strip_bytes=4096)`` cuts every output into
    tiny strips; ``using(cores=8, threads=8)`` lets the driver believe it has
    8 cores.
    """
    global _current
    previous = configure(**changes)
    try:
        yield current()
    finally:
        with _lock:
            _current = previous
