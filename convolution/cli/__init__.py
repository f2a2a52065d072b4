"""The command line: ``python -m convolution COMMAND ...``, also installed as ``convolution``.

Commands: ``filter`` (filter an image file), ``animate`` (an animation of the
kernel sliding), ``explore`` (the explorer, in a window) and ``figures``
(regenerate the README's figures). Each is a function ``<name>_command(args)``
in ``commands.py`` and one ``add_parser`` block in `build_parser`
(``parser.py``). Errors the user can fix are raised as `CommandError` and
reported by `main` as one line on stderr with exit status 2, without a
traceback; argparse's own usage errors follow the same rule (``options.py``,
with the types of the options). Files are written through ``files.py``: to a
temporary file beside the target, renamed into place only once complete, so
no error, Ctrl-C or SIGTERM leaves a half-written file. ``progress.py`` draws
the progress bars on a terminal.

Imports point down: ``__init__`` (`main`), ``parser``, ``commands``,
``options`` and ``progress``, ``files``.
"""
import os
import signal
import sys
import warnings

from .files import CommandError, Stopped, stop_signals_raise
from .options import PROG, report
from .parser import build_parser

__all__ = ["main", "build_parser"]


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Ctrl-C gives status 130 and SIGTERM 143 (128 + the signal's number), each
    with one line on stderr, once every temporary file has been removed. Run
    as a program (``argv`` None), an interrupted run then ends the process at
    once: worker threads may still be filtering strips that nobody will use,
    and waiting for them at exit would keep a stopped process alive (or
    hang, if the interruption landed while the main thread held a lock they
    wait for).
    """
    args = build_parser().parse_args(argv)
    # Warnings wait for the end of the run: an interruption can make a library warn
    # about what it then failed to do (matplotlib: "Unable to import Axes3D"), which
    # would only bury the one line that says the run was interrupted.
    with stop_signals_raise() as signals, warnings.catch_warnings(record=True) as caught:
        try:
            return args.run(args)
        except BaseException as error:
            # Once a signal has come, the run was interrupted, whatever the exception on
            # the way out: a library may have wrapped the KeyboardInterrupt in its own.
            if isinstance(error, (KeyboardInterrupt, Stopped)) and not signals.received:
                signals.received.append(getattr(error, "signum", signal.SIGINT))
            if not signals.received:
                if isinstance(error, CommandError):
                    return report(error)
                if isinstance(error, MemoryError):   # too large an image or parameters
                    return report(f"out of memory: {error or 'the result does not fit'}")
                raise
        finally:
            if not signals.received:
                for warning in caught:
                    warnings.showwarning(warning.message, warning.category, warning.filename,
                                         warning.lineno)
    signum = signals.received[0]
    print(f"{PROG}: interrupted" if signum == signal.SIGINT
          else f"{PROG}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
    status = 128 + signum
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
