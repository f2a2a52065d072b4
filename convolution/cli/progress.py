"""Progress bars on a terminal: the strips a filter runs, the frames an animation draws."""
import sys


def progress_bar(**options):
    """A `ProgressBar` on stderr when it is a terminal and tqdm is installed, else None."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:      # progress is a nicety: run without it
        return None
    return ProgressBar(tqdm, **options)


class ProgressBar:
    """Calls ``progress(done, total)`` drawn as one tqdm bar on stderr, cleared when closed.

    A call with ``done`` 0 starts a new run of ``total`` steps, which adds to
    the bar: each convolution of a filter reports its strips (a picture with
    alpha takes a few), an animation its frames. The bar is drawn when the
    first call comes, then as tqdm sees fit (a few times a second), and
    always once a run is complete, with ``when_done`` beside it (an
    animation is then saved).
    """

    def __init__(self, tqdm, when_done=None, **options):
        self.tqdm, self.options, self.when_done = tqdm, options, when_done
        self.bar, self.before = None, 0

    def __call__(self, done, total):
        if self.bar is None:
            self.bar = self.tqdm(total=total, file=sys.stderr, leave=False, **self.options)
        if done == 0:
            self.before = self.bar.n
        self.bar.total = self.before + total
        self.bar.update(self.before + done - self.bar.n)
        if done == total:
            if self.when_done:
                self.bar.set_postfix_str(self.when_done, refresh=False)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
