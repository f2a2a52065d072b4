"""What the test modules share: optional packages, small matrices, random cases, tolerances."""
import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from convolution import conv2d, conv_output_shape, settings
from convolution.cli import main
from convolution.fast import METHODS as FAST_METHODS
from convolution.padding import PADDING_MODES

HERE = Path(__file__).resolve().parent.parent


def optional(name):
    """The module ``name``, or None when it is not installed (its tests then skip).

    CI sets CONVOLUTION_TEST_REQUIRE_OPTIONAL=1 after installing every optional
    package, so that there a missing one fails the run instead of skipping.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CONVOLUTION_TEST_REQUIRE_OPTIONAL") == "1":
            raise
        return None


scipy_signal = optional("scipy.signal")
torch = optional("torch")
cv2 = optional("cv2")
iio = optional("imageio.v3")
matplotlib = optional("matplotlib")
if matplotlib is not None:
    matplotlib.use("Agg")   # headless, whatever the machine's default backend is


# Small integer matrices for the hand-computed maps. Each expected map below was
# worked out independently of the library (pure-Python index arithmetic, checked
# by hand on a few cells), never produced by conv2d.
M = np.array([[3, 1, 4, 1, 5, 9],
              [2, 6, 5, 3, 5, 8],
              [9, 7, 9, 3, 2, 3],
              [8, 4, 6, 2, 6, 4],
              [3, 3, 8, 3, 2, 7]])
K3 = np.array([[1, 0, -1],
               [2, 1, 0],
               [0, 1, 1]])
K2 = np.array([[1, 2],
               [-1, 1]])
K23 = np.array([[1, 0, 2],
                [0, -1, 1]])


# The classic tutorial's 9 x 14 matrix and 5 x 5 kernel (the README's example), and its
# feature map with stride (2, 1) and dilation (1, 2), worked out outside the library
# (PyTorch's conv2d gives the same).
README_MATRIX = np.array([[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4],
                          [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                          [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4],
                          [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                          [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2],
                          [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                          [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0],
                          [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                          [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]])
README_KERNEL = np.array([[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0],
                          [1, 3, 1, 2, 0]])
README_MAP = [[52, 64, 60, 83, 61, 91], [84, 85, 78, 81, 94, 66], [77, 76, 74, 50, 79, 72]]


def random_case(rng):
    """Random arguments for conv2d: shapes, dtypes and every parameter form."""
    kh, kw = rng.integers(1, 6, size=2)
    dh, dw = rng.integers(1, 4, size=2)
    sh, sw = rng.integers(1, 4, size=2)
    batch = tuple(rng.integers(1, 3, size=rng.integers(0, 3)))
    form = rng.integers(5)
    padding = ("valid", "same", "full", tuple(rng.integers(0, 4, size=2)),
               tuple(tuple(p) for p in rng.integers(0, 5, size=(2, 2))))[form]
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = int(rng.integers(max(span_h - 2, 1), span_h + 12))
    w = int(rng.integers(max(span_w - 2, 1), span_w + 12))
    mode = list(PADDING_MODES)[rng.integers(len(PADDING_MODES))]
    kind = rng.integers(3)
    if kind == 0:
        matrix = rng.integers(-50, 50, size=batch + (h, w))
        kernel = rng.integers(-5, 6, size=(kh, kw))
    elif kind == 1:
        matrix = rng.standard_normal(batch + (h, w)).astype(np.float32)
        kernel = rng.standard_normal((kh, kw)).astype(np.float32)
    else:
        matrix = rng.standard_normal(batch + (h, w))
        kernel = rng.standard_normal((kh, kw))
    fill = int(rng.integers(-3, 4)) if mode == "constant" else 0
    return matrix, kernel, dict(stride=(int(sh), int(sw)), dilation=(int(dh), int(dw)),
                                padding=padding, padding_mode=mode, fill_value=fill,
                                flip=bool(rng.integers(2)))


def fits(matrix, kernel, params):
    """Whether the dilated kernel fits in the padded input for these parameters."""
    try:
        conv_output_shape(matrix.shape, kernel.shape, params["stride"], params["dilation"],
                          params["padding"])
    except ValueError:
        return False
    return True


def exact_methods(kernel):
    """The methods that must give exact integer results for this integer kernel."""
    methods = ("auto", "loops", "direct", "polyphase")
    if rank_one_integer(np.asarray(kernel)):
        methods += ("separable",)
    return methods


def rank_one_integer(kernel):
    """Whether an integer kernel is the outer product of two integer vectors."""
    return kernel.dtype.kind in "iub" and np.linalg.matrix_rank(kernel) <= 1 and kernel.any()


def assert_close(test, actual, expected, scale, ulps=32):
    """Equal on integers; on floats within ``ulps`` rounding units of ``scale``.

    ``scale`` is the size of the terms summed, ``sum(|kernel|) * max(|matrix|)``:
    rounding errors of a sum are relative to its terms, not to its result,
    which cancellation can make arbitrarily small.
    """
    test.assertEqual(actual.shape, expected.shape)
    test.assertEqual(actual.dtype, expected.dtype)
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected)
    else:
        tol = ulps * np.finfo(actual.dtype).eps * max(scale, np.finfo(actual.dtype).tiny)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=tol)


def term_scale(matrix, kernel, fill_value=0):
    """``sum(|kernel|) * max(|matrix|, |fill_value|)``: the size of the terms of each sum."""
    return float(np.abs(kernel).sum() * max(np.abs(matrix).max(), abs(fill_value)))


def compare_with_loops(test, seed, cases, methods=None):
    """Every fast path against the reference loops on ``cases`` random arguments."""
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < cases:
        matrix, kernel, params = random_case(rng)
        if not fits(matrix, kernel, params):
            continue
        expected = conv2d(matrix, kernel, method="loops", **params)
        applicable = ("auto",) + tuple(
            exact_methods(kernel) if kernel.dtype.kind == "i" else FAST_METHODS)
        for method in [m for m in methods or applicable if m in applicable]:
            with test.subTest(case=checked, method=method, shape=matrix.shape,
                              kernel=kernel.shape, **params):
                assert_close(test, conv2d(matrix, kernel, method=method, **params), expected,
                             term_scale(matrix, kernel, params["fill_value"]))
        checked += 1


def run_main(*args):
    """``main(args)`` in this process: (exit status, stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(list(args))
        except SystemExit as exit:      # argparse's usage errors
            status = exit.code
    return status, stderr.getvalue()


def run_command(*args, cwd):
    """``python -m convolution ARGS`` in a new process, with this checkout importable."""
    paths = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    return subprocess.run([sys.executable, "-m", "convolution", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def run_on_a_terminal(*args, cwd):
    """``python -m convolution ARGS`` with stderr an 80-column terminal (a pseudo-terminal).

    Returns (exit status, stdout, what was shown on the terminal). The
    terminal is given a size, as a real one has: tqdm draws nothing on one
    of 0 columns.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios
    paths = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "convolution", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        try:
            chunk = os.read(leader, 1024) if ready else b""
        except OSError:          # Linux: EIO once the process has closed it
            chunk = b""
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    stdout = process.communicate(timeout=120)[0]
    return process.returncode, stdout, shown.decode()


SAMPLE_PHOTO = HERE / "files" / "grace_hopper.jpg"

#: The signals the tests send to a command, to stop it.
SENT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


def default_signals():
    """In a child process before it starts (``preexec_fn``): the sent signals at their defaults.

    A suite started under ``nohup``, or in the background of a script
    without job control, inherits SIGHUP or SIGINT ignored, and the command
    rightly leaves an ignored signal ignored (as ``nohup`` means it to). The
    tests of what a signal does need it as a terminal leaves it.
    """
    for signum in SENT_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


#: Keyword arguments for subprocess that start the child with `default_signals`.
CHILD_SIGNALS = {"preexec_fn": default_signals} if os.name == "posix" else {}


@contextlib.contextmanager
def terminal_signals():
    """In this process: SIGINT raises KeyboardInterrupt, SIGTERM and SIGHUP at their defaults.

    For the in-process tests of signals, whatever the suite inherited (see
    `default_signals`); what was there is put back afterwards.
    """
    saved = {signum: signal.getsignal(signum) for signum in SENT_SIGNALS}
    for signum in SENT_SIGNALS:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def pretend_cores(n):
    """The driver believes it may run on ``n`` cores, whatever the machine and settings."""
    with settings.using(cores=n, threads=n):
        yield


@contextlib.contextmanager
def forced_threads(n):
    """`pretend_cores`, and handing work to another thread costs nothing, however little.

    So the driver uses ``n`` threads wherever there are ``n`` tasks: the
    tests of seams between strips and of the thread pool run the same on
    every machine.
    """
    with settings.using(cores=n, threads=n, handoff_ns=0.0, call_ns=0.0, thread_ns=0.0):
        yield
