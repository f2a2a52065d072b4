"""Files for the command line: paths checked first, images read and written whole, atomically.

Everything here serves the command line (``cli/``): the images it filters
and the kernel files it reads (`read_kernel_file`: a .npy array, or text with
one row of numbers a line). A problem the user can fix is raised
as `CommandError`, which the command line reports as one line on stderr
with exit status 2.

Three promises rest on this module:

* **Nothing is left behind.** `write_atomically` writes to a hidden
  temporary file beside OUTPUT and renames it into place once complete; the
  temporary file is removed on every way out: errors, Ctrl-C, and the
  `STOP_SIGNALS` (SIGTERM, SIGHUP), which `stop_signals_raise` turns into
  the exception `Stopped` so that clean-up runs for them as for Ctrl-C.
* **INPUT is never touched**, and OUTPUT may not be INPUT under another name
  (`check_paths`).
* **No precision is dropped silently**, on reading or writing. imageio's
  Pillow plugin reads a 16-bit colour PNG (RGB, RGBA, grey + alpha) as 8-bit:
  `read_image` reads those with OpenCV when it is installed, and without it
  stops with a line that says why and what to do. On writing, some formats
  quietly hold less than the image (BMP drops alpha, GIF and WebP keep 8
  bits, PGM clips negative values): `write_image` reads back every file it
  wrote and refuses it, before the rename, unless it holds the image's
  channels in a dtype that holds the image's values, and, for lossless
  formats, the very same values.
"""
import contextlib
import os
import signal
import stat
import struct
import tempfile
import warnings

import numpy as np

from ..checks import as_kernel

__all__ = ["CommandError", "Signals", "Stopped", "STOP_SIGNALS", "stop_signals_raise",
           "check_output", "check_output_path", "check_overwrite",
           "check_paths", "write_atomically", "check_format", "read_image", "write_image",
           "read_kernel_file"]


class CommandError(Exception):
    """A problem with the user's input: reported on one line, exit status 2."""


# --- Paths: refused before any work is done ---

def check_output(target, force, extensions=None):
    """Refuse, before any work is done, an OUTPUT that must not or cannot be written."""
    check_output_path(target, extensions)
    check_overwrite(target, force)


def check_output_path(target, extensions=None):
    """Refuse an OUTPUT that cannot be written: no folder, a folder, no or another extension.

    Whether it exists already is `check_overwrite`'s, which the commands ask
    last, once every option has been checked: an error in the options is
    the one to fix first, with or without ``--force``.
    """
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot write OUTPUT {target!r}: folder {folder!r} does not exist")
    if os.path.isdir(target):
        raise CommandError(f"OUTPUT {target!r} is a folder; give a file name, "
                           f"e.g. {os.path.join(target, 'result.png')!r}")
    extension = os.path.splitext(target)[1].lower()
    if not extension:
        raise CommandError(f"OUTPUT {target!r} has no extension, from which the format is "
                           f"chosen; add one, e.g. {target + '.png'!r}")
    if extensions is not None and extension not in extensions:
        raise CommandError(f"OUTPUT must end in {' or '.join(extensions)}, got {target!r}")


def check_overwrite(target, force):
    """Refuse an OUTPUT that exists, unless ``force``."""
    if os.path.lexists(target) and not force:
        raise CommandError(f"OUTPUT {target!r} exists; pass --force to overwrite it")


def check_paths(source, target):
    """Refuse before any work is done: missing INPUT, OUTPUT that cannot be written.

    Whether OUTPUT exists is left to `check_overwrite`, asked last.
    """
    if not os.path.exists(source):
        raise CommandError(f"INPUT {source!r} does not exist")
    if os.path.isdir(source):
        raise CommandError(f"INPUT {source!r} is a folder, not an image file")
    if not os.path.isfile(source):   # reading a pipe could wait for ever
        raise CommandError(f"INPUT {source!r} is not a regular file (a pipe, a device or "
                           f"a socket), not an image file")
    # samefile compares the files themselves (device and inode), so it sees through
    # symbolic and hard links, '..' and other spellings of the same path.
    if os.path.exists(target) and os.path.samefile(source, target):
        raise CommandError(f"OUTPUT {target!r} is the same file as INPUT {source!r}; "
                           f"write the result to another file")
    check_output_path(target)


# --- Atomic writes, and the signals that must not leave a temporary file behind ---

#: Signals that stop a run the way Ctrl-C does: its temporary file is removed,
#: and the exit status is 128 + the signal's number (143 for SIGTERM).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(BaseException):
    """Raised in the main thread when one of `STOP_SIGNALS` arrives.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    takes it for an error of its own, and every ``finally`` on the way out runs.
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Signals:
    """The signals a `stop_signals_raise` block has received, first first."""

    def __init__(self):
        self.received = []

    def check(self):
        """Raise again for a signal received earlier, in case something swallowed its exception."""
        if self.received:
            raise _exception(self.received[0])


def _exception(signum):
    """What a signal raises: KeyboardInterrupt for Ctrl-C, `Stopped` for the others."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


#: The `Signals` of the `stop_signals_raise` block running, if any.
_active = None


@contextlib.contextmanager
def stop_signals_raise():
    """Within the block, Ctrl-C and `STOP_SIGNALS` raise in the main thread, and are remembered.

    Ctrl-C raises KeyboardInterrupt, as it does by default, and the others
    `Stopped`. Each is also recorded in the `Signals` the block yields: a
    library may catch the exception and carry on, or turn it into an error
    of its own (Python 3.11 wraps one raised while a class is being created
    in a RuntimeError, and matplotlib's first import creates many classes),
    but the record stays, so the command line still reports the
    interruption, and `write_atomically` never renames a file into place
    after one. Outside the main thread, where Python cannot handle signals,
    nothing changes. A signal the process was told to ignore (``nohup``
    ignores SIGHUP) stays ignored. The previous handlers come back at the end.
    """
    global _active
    signals = Signals()

    def handler(signum, frame):
        signals.received.append(signum)
        raise _exception(signum)

    previous = {}
    try:
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                previous[signum] = signal.signal(signum, handler)
    except ValueError:   # not the main thread
        pass
    saved, _active = _active, signals
    try:
        yield signals
    finally:
        _active = saved
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _signals_held():
    """Hold Ctrl-C and `STOP_SIGNALS` back until the block ends, where the system can.

    Python runs a signal's handler between two bytecodes, so an exception
    raised by one could land after a temporary file was made and before the
    caller knows its name; held, it lands after.
    """
    if not hasattr(signal, "pthread_sigmask"):   # Windows: no SIGTERM handling to race with
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *STOP_SIGNALS})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _new_file_mode(target):
    """Permission bits for OUTPUT: those of the file it replaces, or the umask's default."""
    if os.path.exists(target):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = os.umask(0)   # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path, write):
    """Call ``write(temporary)`` on a file beside ``path``, then rename it to ``path``.

    The rename is atomic, so ``path`` is either untouched or the whole new
    file, even if the run is interrupted; the temporary file is removed on
    every way out: errors, KeyboardInterrupt and `Stopped`. ``write`` gets a
    path with ``path``'s extension, from which imageio and matplotlib pick
    the format.
    """
    folder = os.path.dirname(os.path.abspath(path))
    stem, extension = os.path.splitext(os.path.basename(path))
    temporary = None
    try:
        try:
            with _signals_held():
                handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=extension,
                                                     dir=folder)
        except OSError as error:
            raise CommandError(f"cannot write OUTPUT {path!r}: {error.strerror} "
                               f"in folder {folder!r}") from None
        os.close(handle)
        write(temporary)
        if _active is not None:
            _active.check()   # an interruption that the writing swallowed still stops it
        try:
            os.chmod(temporary, _new_file_mode(path))   # mkstemp's is 0600, private
            os.replace(temporary, path)
        except OSError as error:
            raise CommandError(f"cannot write OUTPUT {path!r}: {error.strerror}") from None
    finally:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):   # gone once renamed
                os.remove(temporary)


# --- Images ---

#: Extensions of formats that compress with loss: a file written in one is
#: checked for its channels and dtype only, not for the very same values.
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".jif", ".webp", ".gif", ".avif",
                    ".heic", ".heif")

#: PNG colour types (the IHDR's) with more than one channel: grey + alpha, RGB, RGBA.
_PNG_COLOUR = {4: "grey + alpha", 2: "RGB", 6: "RGBA"}

_OPENCV_HINT = "pip install opencv-python-headless"


def _imageio():
    """imageio's v3 API, imported here so that ``import convolution`` does not need it."""
    try:
        import imageio.v3
    except ImportError:
        raise CommandError("reading and writing images needs imageio: "
                           "pip install imageio") from None
    return imageio.v3


def _opencv():
    """OpenCV's ``cv2``, or None when it is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


@contextlib.contextmanager
def _opencv_quiet(cv2):
    """OpenCV's log silenced: it would print its warnings about a bad file on stderr."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _png16_colour(path):
    """'RGB', 'RGBA' or 'grey + alpha' for a 16-bit PNG with that many channels; else None.

    A PNG starts with an 8-byte signature and its IHDR chunk: length (4
    bytes), type (4), width (4), height (4), bit depth (1), colour type (1).
    """
    with open(path, "rb") as file:
        head = file.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    bit_depth, colour_type = head[24], head[25]
    return _PNG_COLOUR.get(colour_type) if bit_depth == 16 else None


def _read_png16(path, colour):
    """A 16-bit ``colour`` PNG, all 16 bits, through OpenCV; channels in RGB(A) order."""
    cv2 = _opencv()
    with _opencv_quiet(cv2):   # decoded from bytes: any file name works
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("OpenCV could not decode it")
    # As stored, not rotated or converted, except that OpenCV gives BGR(A), and
    # grey + alpha as BGRA with three equal grey channels.
    order = [0, 3] if colour == "grey + alpha" else [2, 1, 0, 3][:image.shape[2]]
    return np.ascontiguousarray(image[..., order])


def _read_pixels(path):
    """Every pixel in ``path`` at its full depth (the exceptions of imageio or OpenCV pass)."""
    colour = _png16_colour(path)
    if colour:
        return _read_png16(path, colour)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a warning would break the one-line rule
        return _imageio().imread(path)


def _reason(error):
    """One line saying why imageio, Pillow or OpenCV could not read a file."""
    text = " ".join(str(error).split())
    if text.startswith("Could not find a backend"):
        # imageio goes on to list plugins to install, which would not help.
        return "not an image file: none of imageio's readers recognises its contents"
    if isinstance(error, struct.error) or text.startswith("unpack"):
        text = ""   # a header shorter than its format's: Python's words, not the file's
    return f"not an image, or a damaged one{f' ({text})' if text else ''}"


def _describe(image):
    """'uint8 image with 3 channels' and the like."""
    channels = image.shape[2] if image.ndim == 3 else 1
    return f"{image.dtype} image with {channels} channel{'s' * (channels > 1)}"


def read_image(path):
    """The image in ``path`` with all its bits, as an (H, W) or (H, W, C) array.

    imageio reads it, except 16-bit colour PNGs, which OpenCV reads (see the
    module's docstring). A one-frame animation is one image; 1-bit images
    come back as 8-bit (0 and 255), which can hold a blur.
    """
    _imageio()   # the line that says to install it comes first
    if os.path.getsize(path) == 0:
        raise CommandError(f"cannot read INPUT {path!r}: the file is empty")
    colour = _png16_colour(path)
    if colour and _opencv() is None:
        raise CommandError(
            f"INPUT {path!r} is a 16-bit {colour} PNG, which imageio would read as 8-bit: "
            f"install OpenCV to read all 16 bits ({_OPENCV_HINT}), or convert it to a "
            f"16-bit TIFF first")
    try:
        image = _read_pixels(path)
    except MemoryError:
        raise
    # imageio raises many types (OSError, ValueError, SyntaxError from Pillow, ...)
    # for files that are not images; all of them mean the same to the user.
    except Exception as error:
        raise CommandError(f"cannot read INPUT {path!r}: {_reason(error)}") from None
    if image.ndim == 4:   # GIF and other animated formats come as (frames, H, W, C)
        if image.shape[0] != 1:
            raise CommandError(f"INPUT {path!r} holds {image.shape[0]} frames; the filter "
                               f"command takes a single image")
        image = image[0]
    if image.dtype == np.bool_:
        # A 1-bit image has no grey levels to hold a blur: filter it as 8-bit.
        image = image.astype(np.uint8) * np.uint8(255)
    return image


def check_format(path):
    """Refuse an OUTPUT extension that names no image format imageio knows.

    Left to itself, imageio tries every plugin on an unknown extension, and
    with tifffile installed it would write a TIFF named ``out.xyz``.
    """
    _imageio()
    from imageio.config import known_extensions
    extension = os.path.splitext(path)[1].lower()
    if extension not in known_extensions:
        raise CommandError(f"cannot write OUTPUT {path!r}: imageio knows no image format "
                           f"{extension!r}; use e.g. .png, .jpg or .tif")


def _write_pixels(temporary, image, path):
    """Write ``image`` to ``temporary`` in the format of ``path``'s extension."""
    extension = os.path.splitext(path)[1].lower()
    channels = image.shape[2] if image.ndim == 3 else 1
    cannot = f"cannot write OUTPUT {path!r}:"
    if extension not in (".tif", ".tiff") and channels > 4:
        raise CommandError(f"{cannot} a {extension} file holds at most 4 channels (grey, "
                           f"grey + alpha, RGB, RGBA), this image has {channels}; "
                           f".tif holds any number")
    if extension == ".png" and image.dtype == np.uint16 and channels > 1:
        # imageio (Pillow) cannot write these; OpenCV can, but not grey + alpha.
        cv2 = _opencv()
        if cv2 is None or channels == 2:
            how = "" if channels == 2 else f"install OpenCV to write them ({_OPENCV_HINT}), or "
            raise CommandError(f"{cannot} imageio cannot write a 16-bit PNG with {channels} "
                               f"channels; {how}write .tif, which holds every dtype")
        with _opencv_quiet(cv2):
            done, encoded = cv2.imencode(".png", image[..., [2, 1, 0, 3][:channels]])  # BGR(A)
        if not done:
            raise CommandError(f"{cannot} OpenCV could not encode it as PNG")
        encoded.tofile(temporary)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # is_batch=False: an (H, W, C) array is one image, never C frames of (H, W).
            _imageio().imwrite(temporary, image, extension=extension, is_batch=False)
    except Exception as error:   # as in read_image
        reason = " ".join(str(error).replace(temporary, path).split())   # the name the user knows
        raise CommandError(f"{cannot} imageio could not save a {_describe(image)} as "
                           f"{extension} ({reason}); .tif holds every dtype") from None


def _check_written(temporary, image, path):
    """Refuse the file just written unless it holds ``image`` without loss of precision."""
    extension = os.path.splitext(path)[1].lower()
    cannot = f"cannot write OUTPUT {path!r}:"
    try:
        back = _read_pixels(temporary)
    except Exception as error:
        raise CommandError(f"{cannot} the {extension} file written could not be read back "
                           f"({' '.join(str(error).split())})") from None
    if back.ndim == 4 and back.shape[0] == 1:   # one frame of an animated format
        back = back[0]
    if image.ndim == 2 and back.ndim == 3 and (back == back[..., :1]).all():
        back = back[..., 0]   # grey written as equal channels (GIF's palette)
    holds = back.shape == image.shape and np.can_cast(image.dtype, back.dtype, "safe")
    if holds and extension not in LOSSY_EXTENSIONS and not np.array_equal(back, image,
                                                                          equal_nan=True):
        raise CommandError(f"{cannot} a {extension} file changes the values of this "
                           f"{_describe(image)} (clipped or rounded to what it holds); "
                           f".tif holds every dtype")
    if not holds:
        raise CommandError(f"{cannot} a {extension} file would hold this {_describe(image)} "
                           f"as a {_describe(back)}; .tif holds every dtype")


def write_image(path, image):
    """Write ``image`` to ``path`` through a temporary file (see `write_atomically`).

    The temporary file is read back before it is renamed into place, and
    refused if the format did not hold the image: fewer channels, a dtype
    that cannot hold its values, or (for formats without loss) other values.
    """
    def write(temporary):
        _write_pixels(temporary, image, path)
        _check_written(temporary, image, path)

    write_atomically(path, write)


# --- Kernel files: a .npy array, or text with one row of numbers a line ---

def _kernel_text(path):
    """The numbers in a text file, one row of the kernel a line, as a 2-D float64 array.

    Numbers are separated by spaces, commas or both; blank lines and
    everything after a '#' are skipped.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except UnicodeDecodeError:
        raise CommandError(f"kernel file {path!r} is not text: give a text file of numbers "
                           f"or a .npy file") from None
    rows = []   # (line number, its numbers)
    for line_number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].replace(",", " ").split()
        if words:
            rows.append((line_number, [_kernel_number(word, path, line_number)
                                       for word in words]))
    if not rows:
        raise CommandError(f"kernel file {path!r} holds no numbers")
    first_line, first = rows[0]
    for line_number, row in rows:
        if len(row) != len(first):
            raise CommandError(f"kernel file {path!r} must have as many numbers on every "
                               f"line: line {first_line} has {len(first)}, line {line_number} "
                               f"has {len(row)}")
    return np.array([row for _, row in rows])


def _kernel_number(word, path, line_number):
    """``float(word)``, or the line that says where the kernel file holds a non-number."""
    try:
        return float(word)
    except ValueError:
        raise CommandError(f"kernel file {path!r}, line {line_number}: {word!r} is not a "
                           f"number") from None


def read_kernel_file(path):
    """The kernel in a .npy file, or in a text file of numbers (see `_kernel_text`)."""
    try:
        if path.lower().endswith(".npy"):
            with open(path, "rb") as file:
                magic = file.read(6)
            # np.load would take anything else for a pickle, and say so confusingly.
            if magic != b"\x93NUMPY":
                raise CommandError(f"kernel file {path!r} is not a NumPy .npy file")
            kernel = np.load(path, allow_pickle=False)
        else:
            kernel = _kernel_text(path)
    except (OSError, ValueError, EOFError) as error:   # EOFError: a truncated .npy
        raise CommandError(f"cannot read kernel file {path!r}: {error}") from None
    try:
        return as_kernel(kernel, f"kernel file {path!r}", kinds="biuf", finite=True)
    except (TypeError, ValueError) as error:
        raise CommandError(error) from None
