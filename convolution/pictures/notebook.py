"""`explore`: the explorer in Jupyter, as ipywidgets.

One widget per control of `explorer.CONTROLS` (sliders, menus, check boxes,
and a play button on the step), the picture as a PNG image widget, and the
formula and the calls as text. Each change goes to `Explorer.set`; the
picture is drawn again (only repainted when the step alone changed) and the
text rewritten. ipywidgets is imported when `explore` is called; in a
window instead, see `window.explore_window` (``convolution explore``).
"""
import html
import io

from .explorer import CONTROLS, Explorer

__all__ = ["explore", "NotebookExplorer"]


def _require_ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError("explore() needs ipywidgets in Jupyter: pip install ipywidgets "
                          "(or run 'convolution explore' for a window)") from None
    return ipywidgets


def _png(figure):
    """``figure`` as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class NotebookExplorer:
    """The explorer as ipywidgets: `explore` returns one; it shows itself as the cell's value.

    Attributes
    ----------
    explorer : Explorer
        The settings and what they mean.
    controls : dict
        The widget of each control, by name: ``controls["stride_height"].value = 2``
        does what dragging the slider does.
    image : ipywidgets.Image
        The picture, as PNG bytes in ``image.value``.
    channels_image : ipywidgets.Image
        For a layer, which input channels each output channel reads (hidden
        otherwise).
    text : ipywidgets.HTML
        The formula with its numbers, the ``conv2d(...)`` call and the PyTorch code.
    widget : ipywidgets.Widget
        All of it, laid out.
    """

    def __init__(self, **settings):
        widgets = _require_ipywidgets()
        self.explorer = Explorer(**settings)
        self.controls = {}
        for control in CONTROLS:
            value = self.explorer.settings[control.name]
            style = {"description_width": "initial"}
            if control.choices is not None:
                widget = widgets.Dropdown(options=list(control.choices), value=value,
                                          description=control.label, style=style)
            elif isinstance(control.default, bool):
                widget = widgets.Checkbox(value=value, description=control.label,
                                          indent=False)
            else:
                widget = widgets.IntSlider(value=value, min=control.low, max=control.high,
                                           description=control.label, style=style,
                                           continuous_update=False)
            self.controls[control.name] = widget
        self.play = widgets.Play(interval=700, description="play the cells")
        widgets.jslink((self.play, "value"), (self.controls["step"], "value"))
        self.image = widgets.Image(format="png")
        self.channels_image = widgets.Image(format="png")   # a layer's channels and groups
        self.text = widgets.HTML()
        self._picture = self._key = None
        self._busy = False     # True while _update moves widgets itself

        c = self.controls

        def row(*names):
            return widgets.HBox([c[name] for name in names])

        self.widget = widgets.VBox([
            row("height", "width", "kernel_height", "kernel_width"),
            row("stride_height", "stride_width", "dilation_height", "dilation_width"),
            row("padding_height", "pad_top", "pad_bottom"),
            row("padding_width", "pad_left", "pad_right"),
            row("padding_mode", "fill_value", "flip", "values"),
            row("transposed", "output_padding_height", "output_padding_width"),
            row("in_channels", "out_channels", "groups"),
            widgets.HBox([self.play, c["step"]]),
            self.image, self.channels_image, self.text])
        self._update()
        for name, widget in self.controls.items():
            widget.observe(self._changed, names="value")

    def _changed(self, change):
        if self._busy:
            return
        name = next(name for name, widget in self.controls.items() if widget is change.owner)
        self.explorer.set(**{name: change.new})
        self._update()

    def _update(self):
        """Redraw the picture (repaint it if only the step changed) and rewrite the text."""
        settings = self.explorer.settings
        view = self.explorer.view()
        step = self.controls["step"]
        self._busy = True
        try:   # the explorer has kept the step inside the cells; the slider follows
            step.max = max(view.cells - 1, 0)
            step.value = settings["step"]
            self.play.max = step.max
        finally:
            self._busy = False
        self.channels_image.layout.display = None if self.explorer.layer else "none"
        if view.error is not None:
            self._picture = self._key = None
            self.image.value = self.channels_image.value = b""
            self.text.value = f"<p style='color:#b00'>{html.escape(view.error)}</p>"
            return
        key = tuple(value for name, value in settings.items() if name != "step")
        if key != self._key:
            self._picture, self._key = self.explorer.picture(), key
        else:
            self._picture.show(settings["step"])
        self.image.value = _png(self._picture.ax.figure)
        self.channels_image.value = (_png(self.explorer.channels_picture().figure)
                                     if self.explorer.layer else b"")
        blocks = [("output shape", view.formula), ("this library", view.call),
                  ("PyTorch", view.torch_call)]
        if view.channels:
            blocks.insert(1, ("channels", view.channels))
        self.text.value = "".join(f"<b>{title}</b><pre>{html.escape(body)}</pre>"
                                  for title, body in blocks)

    def _repr_mimebundle_(self, **kwargs):
        return {**self.widget._repr_mimebundle_(**kwargs), "text/plain": repr(self)}

    def __repr__(self):
        return f"<NotebookExplorer: {self.explorer.view().call.splitlines()[-1]}>"


def explore(**settings):
    """An interactive explorer of the convolution, for Jupyter: drag, and watch.

    Sliders and menus for the input size (up to 32 x 32), the kernel size,
    the stride, the dilation and the padding of each axis (numbers, or
    'valid', 'same', 'full'), the border mode, flip, the transposed
    convolution with its output padding, the channels and groups of a
    small layer, and a step (with a play button) through the output cells.
    Each change redraws the picture and shows the output-shape formula with
    the numbers filled in, the matching ``conv2d(...)`` call and the
    equivalent PyTorch code.

    Parameters
    ----------
    **settings
        Where the controls start, by name (see `explorer.CONTROLS`), e.g.
        ``explore(height=7, kernel_height=4, stride_height=2, padding_height="same")``.

    Returns
    -------
    NotebookExplorer
        Shows itself as the value of a cell; its ``controls`` can be set
        from code too.

    Raises
    ------
    ImportError
        ipywidgets (or matplotlib) is not installed.
    TypeError, ValueError
        An unknown setting, or a value of the wrong type or out of range.

    See Also
    --------
    convolution.pictures.window.explore_window : the same explorer in a
        matplotlib window (``python -m convolution explore``).
    """
    from .grid import require_matplotlib

    require_matplotlib()
    return NotebookExplorer(**settings)
