"""`explore_window`: the explorer in a matplotlib window, for a desktop.

The controls of `explorer.CONTROLS` as matplotlib's widgets: a slider for
each number, radio buttons for the padding of each axis and the border
mode, check boxes for flip, transposed and the values. The picture is drawn
in the window's right half, the formula and the calls below it. Each change
goes to `Explorer.set`, as in Jupyter (``notebook.py``).
``python -m convolution explore`` opens it.
"""
import textwrap

from .explorer import CONTROLS, Explorer
from .grid import require_matplotlib

__all__ = ["explore_window", "WindowExplorer", "NON_INTERACTIVE"]

#: matplotlib backends that draw files, not windows.
NON_INTERACTIVE = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")

_SWITCHES = [control for control in CONTROLS if isinstance(control.default, bool)]
_MENUS = [control for control in CONTROLS if control.choices is not None]
_SLIDERS = [control for control in CONTROLS if control not in _SWITCHES + _MENUS]


class WindowExplorer:
    """The explorer drawn into one matplotlib figure, with matplotlib's widgets.

    Attributes
    ----------
    figure : matplotlib Figure
    explorer : Explorer
    sliders : dict of matplotlib.widgets.Slider
        By control name: ``sliders["stride_height"].set_val(2)`` does what
        dragging it does.
    menus : dict of matplotlib.widgets.RadioButtons
        ``padding_height``, ``padding_width``, ``padding_mode``.
    switches : matplotlib.widgets.CheckButtons
        flip, transposed, values, in the order of their labels.
    ax : matplotlib Axes
        Where the picture is drawn.
    text : matplotlib Text
        The formula with its numbers, the call and the PyTorch code.
    channels_ax : matplotlib Axes
        For a layer, which input channels each output channel reads.
    """

    def __init__(self, figure, **settings):
        from matplotlib.widgets import CheckButtons, RadioButtons, Slider

        self.figure, self.explorer = figure, Explorer(**settings)
        values = self.explorer.settings
        self.sliders, self.menus = {}, {}
        top, pitch = 0.965, 0.029
        for row, control in enumerate(_SLIDERS):
            ax = figure.add_axes([0.1, top - row * pitch, 0.17, 0.018])
            slider = Slider(ax, control.label, control.low, control.high,
                            valinit=values[control.name], valstep=1, valfmt="%d")
            slider.label.set_fontsize(8)
            slider.on_changed(self._setter(control.name, int))
            self.sliders[control.name] = slider
        below = top - len(_SLIDERS) * pitch
        checks_ax = figure.add_axes([0.02, below - 0.085, 0.26, 0.075])
        self.switches = CheckButtons(checks_ax, [control.label for control in _SWITCHES],
                                     [values[control.name] for control in _SWITCHES])
        self.switches.on_clicked(self._switched)
        height = below - 0.13
        for column, control in enumerate(_MENUS):
            ax = figure.add_axes([0.02 + column * 0.09, 0.01, 0.085, height])
            ax.set_title(control.label, fontsize=8)
            menu = RadioButtons(ax, control.choices,
                                active=control.choices.index(values[control.name]))
            for label in menu.labels:
                label.set_fontsize(8)
            menu.on_clicked(self._setter(control.name, str))
            self.menus[control.name] = menu
        self.ax = figure.add_axes([0.33, 0.42, 0.66, 0.5])
        self.text = figure.text(0.33, 0.3, "", va="top", ha="left", family="monospace",
                                fontsize=7.5)
        self.channels_ax = figure.add_axes([0.8, 0.02, 0.18, 0.28])   # a layer's groups
        self._picture = self._key = None
        self._busy = False
        self.update()

    def _setter(self, name, convert):
        def changed(value):
            if not self._busy:
                self.explorer.set(**{name: convert(value)})
                self.update()
        return changed

    def _switched(self, label):
        control = next(control for control in _SWITCHES if control.label == label)
        self.explorer.set(**{control.name: not self.explorer.settings[control.name]})
        self.update()

    def update(self):
        """Redraw the picture (repaint it if only the step changed) and rewrite the text."""
        settings = self.explorer.settings
        view = self.explorer.view()
        step = self.sliders["step"]
        self._busy = True
        try:   # the step slider reaches the last cell there is
            step.valmax = max(view.cells - 1, 1)
            step.ax.set_xlim(step.valmin, step.valmax)
            step.set_val(settings["step"])
        finally:
            self._busy = False
        self.channels_ax.clear()
        self.channels_ax.set_axis_off()
        if view.error is None and self.explorer.layer:
            self.explorer.channels_picture(self.channels_ax)
        if view.error is not None:
            self._picture = self._key = None
            self.ax.clear()
            self.ax.set_axis_off()
            self.ax.text(0.5, 0.5, textwrap.fill(view.error, 70), ha="center", va="center",
                         color="#b00000", fontsize=10, transform=self.ax.transAxes)
            self.text.set_text("")
        else:
            key = tuple(value for name, value in settings.items() if name != "step")
            if key != self._key:
                self.ax.clear()
                self._picture, self._key = self.explorer.picture(self.ax), key
            else:
                self._picture.show(settings["step"])
            blocks = [view.formula, view.call, view.torch_call]
            if view.channels:
                blocks.insert(1, textwrap.fill(view.channels, 90))
            self.text.set_text("\n\n".join(blocks))
        self.figure.canvas.draw_idle()


def explore_window(show=True, **settings):
    """Open the explorer in a matplotlib window: the same controls as `explore`, for a desktop.

    Parameters
    ----------
    show : bool, default True
        Call ``matplotlib.pyplot.show()``, which returns when the window is
        closed. With False, the figure is made and returned unshown (to
        drive it from code, or under the Agg backend in tests).
    **settings
        Where the controls start, as for `explore`.

    Returns
    -------
    WindowExplorer

    Raises
    ------
    ImportError
        matplotlib is not installed.
    RuntimeError
        ``show`` and a backend that cannot open windows (no display).
    TypeError, ValueError
        As for `explore`.
    """
    matplotlib = require_matplotlib()
    import matplotlib.pyplot as plt

    Explorer(**settings)                  # bad settings are refused before anything opens
    backend = matplotlib.get_backend().lower()
    if show and backend in NON_INTERACTIVE:
        raise RuntimeError(f"the explorer's window needs a display, and matplotlib's backend "
                           f"is {backend!r}, which draws files only; in Jupyter, call "
                           f"convolution.explore() instead")
    figure = plt.figure(figsize=(15, 9.5))     # a new one each call: no num= to reuse
    if figure.canvas.manager is not None:
        figure.canvas.manager.set_window_title("convolution explorer")
    window = WindowExplorer(figure, **settings)
    if show:
        plt.show()
    return window
