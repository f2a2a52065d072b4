"""The explorer's model: its settings, the picture they draw, the formula and the calls.

What `explore` (ipywidgets, ``notebook.py``) and `explore_window`
(matplotlib's widgets, ``window.py``) share: an `Explorer` holds one value
per control of `CONTROLS`, checks each change, and says what the settings
mean: the convolution's geometry (or why there is none), the output-shape
formula with the numbers filled in, the matching ``conv2d(...)`` or
``conv_transpose2d(...)`` call, and the equivalent PyTorch code. Both front
ends only turn their widgets' values into `Explorer.set` calls and show what
comes back, so the two cannot disagree.

The padding is chosen per axis: numbers (before and after), or 'valid',
'same' or 'full', each resolved on its own axis by `geometry.resolve_padding`.
The same string on both axes is handed to ``conv2d`` as that string.

The values drawn are fixed pseudo-random small integers (the calls print the
line that makes them), so every sum can be checked by hand. A layer (more
than one channel, or groups) is drawn for input channel 0 and the kernel
slice ``w[0, 0]``: the part of output channel 0 that input channel 0 adds.
"""
import math
from typing import NamedTuple

import numpy as np

from ..checks import check_choice
from ..padding import PADDING_MODES
from ..geometry import ConvGeometry, conv_geometry, conv_transpose_geometry, resolve_padding
from ..shapes import PADDING_STRINGS

__all__ = ["Explorer", "Control", "CONTROLS", "View"]


class Control(NamedTuple):
    """One setting of the explorer: a slider (low..high), a menu (choices) or a switch."""
    name: str
    label: str
    default: object
    low: int = None
    high: int = None
    choices: tuple = None


#: The padding of one axis: numbers (the before and after sliders) or a string.
PADDING_KINDS = ("numbers",) + PADDING_STRINGS

#: Every control, in the order the front ends lay them out.
CONTROLS = (
    Control("height", "input H", 5, 1, 32),
    Control("width", "input W", 5, 1, 32),
    Control("kernel_height", "kernel kh", 3, 1, 7),
    Control("kernel_width", "kernel kw", 3, 1, 7),
    Control("stride_height", "stride sh", 1, 1, 4),
    Control("stride_width", "stride sw", 1, 1, 4),
    Control("dilation_height", "dilation dh", 1, 1, 4),
    Control("dilation_width", "dilation dw", 1, 1, 4),
    Control("padding_height", "padding H", "numbers", choices=PADDING_KINDS),
    Control("pad_top", "top", 0, 0, 6),
    Control("pad_bottom", "bottom", 0, 0, 6),
    Control("padding_width", "padding W", "numbers", choices=PADDING_KINDS),
    Control("pad_left", "left", 0, 0, 6),
    Control("pad_right", "right", 0, 0, 6),
    Control("padding_mode", "border", "zeros", choices=tuple(PADDING_MODES)),
    Control("fill_value", "fill value", 0, -9, 9),
    Control("flip", "flip (true convolution)", False),
    Control("transposed", "transposed", False),
    Control("output_padding_height", "output_padding H", 0, 0, 3),
    Control("output_padding_width", "output_padding W", 0, 0, 3),
    Control("in_channels", "C_in", 1, 1, 4),
    Control("out_channels", "C_out", 1, 1, 4),
    Control("groups", "groups", 1, 1, 4),
    Control("values", "show values", True),
    Control("step", "cell", 0, 0, 32 * 32 - 1),
)
_BY_NAME = {control.name: control for control in CONTROLS}


class View(NamedTuple):
    """What the settings mean, for the front ends to show.

    ``geometry`` is None and ``error`` says why when the settings describe
    no convolution (a kernel larger than the padded input, groups that do
    not divide the channels, ...). ``cells``: the frames of the step control
    (output cells, or input cells when transposed).
    """
    geometry: object
    error: str
    formula: str
    call: str
    torch_call: str
    channels: str
    cells: int


def _check(name, value):
    """``value`` for the control ``name``, as the control holds it; errors name both."""
    if name not in _BY_NAME:
        raise TypeError(f"unknown setting {name!r}; the settings are "
                        f"{', '.join(_BY_NAME)}")
    control = _BY_NAME[name]
    if control.choices is not None:
        check_choice(name, value, control.choices)
        return value
    if isinstance(control.default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not control.low <= value <= control.high:
        raise ValueError(f"{name} must be from {control.low} to {control.high}, got {value!r}")
    return int(value)


def _short(pair):
    """A pair as the call would be written: one int when both axes agree."""
    return pair[0] if pair[0] == pair[1] else tuple(pair)


def _short_padding(pairs):
    """``((top, bottom), (left, right))`` as briefly as conv2d takes it."""
    if all(before == after for before, after in pairs):
        return _short([before for before, _ in pairs])
    return tuple(tuple(pair) for pair in pairs)


def _torch_pads(mode, shape, padding):
    """True when ``F.pad`` makes this border: 'reflect' reaches size - 1 cells, 'circular' size."""
    reach = {"zeros": math.inf, "constant": math.inf, "replicate": math.inf, "reflect": -1,
             "circular": 0, "symmetric": None}[mode]
    return reach is not None and all(max(pair) <= size + reach for size, pair
                                     in zip(shape, padding))


def _keywords(**given):
    """``name=value, ...`` for the arguments that are not at their defaults (None)."""
    return "".join(f", {name}={value!r}" for name, value in given.items() if value is not None)


class Explorer:
    """The explorer's settings and what they mean; `set` changes them, `view` says what they draw.

    Parameters
    ----------
    **settings
        Initial values of any of the `CONTROLS`, by name, e.g.
        ``Explorer(height=6, stride_height=2, padding_height="same")``.

    Raises
    ------
    TypeError, ValueError
        An unknown setting, or a value of the wrong type or out of its range.

    Examples
    --------
    >>> explorer = Explorer(height=5, width=5, kernel_height=4, kernel_width=4,
    ...                     stride_height=2, stride_width=2,
    ...                     padding_height="same", padding_width="same")
    >>> explorer.view().geometry.output_shape
    (3, 3)
    >>> print(explorer.view().call.splitlines()[-1])
    conv2d(x, k, stride=2, padding='same')
    """

    def __init__(self, **settings):
        self.settings = {control.name: control.default for control in CONTROLS}
        self.set(**settings)

    def set(self, **changes):
        """Change settings by name; the step is kept inside the cells there are. Returns `view`."""
        checked = {name: _check(name, value) for name, value in changes.items()}
        self.settings.update(checked)
        view = self.view()
        if view.cells and self.settings["step"] >= view.cells:
            self.settings["step"] = view.cells - 1
        return view

    # --- what the settings mean ---

    def pairs(self, name):
        """A pair of settings ``name_height``, ``name_width``."""
        return self.settings[f"{name}_height"], self.settings[f"{name}_width"]

    @property
    def layer(self):
        """True when the settings describe a CNN layer: channels or groups."""
        s = self.settings
        return s["in_channels"] > 1 or s["out_channels"] > 1 or s["groups"] > 1

    def padding(self):
        """The padding argument: a string on both axes as itself, else numbers per side."""
        s = self.settings
        kinds = self.pairs("padding")
        if kinds[0] == kinds[1] != "numbers":
            return kinds[0]
        numbers = ((s["pad_top"], s["pad_bottom"]), (s["pad_left"], s["pad_right"]))
        pairs = [numbers[axis] if kind == "numbers" else
                 resolve_padding(kind, (size,), (k,), stride, dilation)[0]
                 for axis, (kind, size, k, stride, dilation) in enumerate(zip(
                     kinds, (s["height"], s["width"]), self.pairs("kernel"),
                     self.pairs("stride"), self.pairs("dilation")))]
        return _short_padding(pairs)

    def arrays(self):
        """``(x, w)``: the input and the kernel the calls make and the picture draws."""
        return (np.random.default_rng(0).integers(0, 5, self._x_shape()),
                np.random.default_rng(1).integers(-1, 3, self._w_shape()))

    def _x_shape(self):
        s = self.settings
        return ((s["in_channels"],) if self.layer else ()) + (s["height"], s["width"])

    def _w_shape(self):
        s = self.settings
        kernel = self.pairs("kernel")
        if not self.layer:
            return kernel
        if s["transposed"]:
            return (s["in_channels"], s["out_channels"] // s["groups"]) + kernel
        return (s["out_channels"], s["in_channels"] // s["groups"]) + kernel

    def geometry(self):
        """The `ConvGeometry` or `TransposeGeometry` of the settings; ValueError if none."""
        s = self.settings
        if self.layer:
            for channels in ("in_channels", "out_channels"):
                if s[channels] % s["groups"]:
                    raise ValueError(f"groups must divide in_channels and out_channels, got "
                                     f"groups={s['groups']} with {channels}={s[channels]}")
        shape = (s["height"], s["width"])
        if not s["transposed"]:
            return conv_geometry(shape, self.pairs("kernel"), self.pairs("stride"),
                                 self.pairs("dilation"), self.padding())
        if any(kind != "numbers" for kind in self.pairs("padding")):
            raise ValueError("the transposed convolution crops numbers of cells off its "
                             "result: choose numbers for the padding of both axes")
        return conv_transpose_geometry(shape, self.pairs("kernel"), self.pairs("stride"),
                                       self.pairs("dilation"), self.padding(),
                                       self.pairs("output_padding"))

    def view(self):
        """The `View` of the current settings."""
        try:
            g = self.geometry()
        except (TypeError, ValueError) as error:
            return View(None, str(error), "", "", "", "", 0)
        transposed = self.settings["transposed"]
        cells = math.prod(g.input_shape if transposed else g.output_shape)
        return View(g, None, self.formula(g), self.call(g), self.torch_call(g), self.channels(),
                    cells)

    def formula(self, g):
        """The output-shape formula, once in symbols and once with the numbers, per axis."""
        lines = []
        for axis, (big, small, before, after) in enumerate((("H", "h", "top", "bottom"),
                                                            ("W", "w", "left", "right"))):
            n, k, s, d = (g.input_shape[axis], g.kernel_shape[axis], g.stride[axis],
                          g.dilation[axis])
            top, bottom = g.padding[axis]
            if isinstance(g, ConvGeometry):
                kind = self.pairs("padding")[axis]
                if kind == "same":
                    outputs = -(-n // s)
                    total = max((outputs - 1) * s + d * (k - 1) + 1 - n, 0)
                    lines.append(f"'same' on {big}: ceil({n} / {s}) = {outputs} outputs, "
                                 f"total = max(({outputs} − 1)·{s} + {d}·({k} − 1) + 1 − {n}, "
                                 f"0) = {total}: {before} {top}, {after} {bottom}")
                elif kind == "full":
                    lines.append(f"'full' on {big}: {before} = {after} = d{small}·(k{small} − 1)"
                                 f" = {d}·({k} − 1) = {top}")
                size = (n + top + bottom - d * (k - 1) - 1) // s + 1
                lines.append(f"{big}_out = floor(({big} + {before} + {after} − d{small}·"
                             f"(k{small} − 1) − 1) / s{small}) + 1")
                lines.append(f"{' ' * len(big)}     = floor(({n} + {top} + {bottom} − {d}·({k} − 1)"
                             f" − 1) / {s}) + 1 = {size}")
            else:
                extra = g.output_padding[axis]
                size = (n - 1) * s - top - bottom + d * (k - 1) + extra + 1
                lines.append(f"{big}_out = ({big} − 1)·s{small} − {before} − {after} + "
                             f"d{small}·(k{small} − 1) + output_padding + 1")
                lines.append(f"{' ' * len(big)}     = ({n} − 1)·{s} − {top} − {bottom} + "
                             f"{d}·({k} − 1) + {extra} + 1 = {size}")
        return "\n".join(lines)

    def _making(self):
        """The lines that make ``x`` and the kernel, as `arrays` makes them."""
        kernel = "w" if self.layer else "k"
        return (f"x = np.random.default_rng(0).integers(0, 5, {self._x_shape()})\n"
                f"{kernel} = np.random.default_rng(1).integers(-1, 3, {self._w_shape()})\n")

    def call(self, g):
        """The ``conv2d(...)`` (or ``conv_transpose2d(...)``) call the picture draws, as code."""
        s = self.settings
        kernel = "w" if self.layer else "k"
        common = dict(stride=None if g.stride == (1, 1) else _short(g.stride),
                      dilation=None if g.dilation == (1, 1) else _short(g.dilation))
        groups = None if s["groups"] == 1 else s["groups"]
        if s["transposed"]:
            padding = _short_padding(g.padding)
            extra = _short(g.output_padding)
            text = (f"conv_transpose2d(x, {kernel}" + _keywords(
                **common, padding=padding or None, output_padding=extra or None, groups=groups)
                + ")")
            if s["flip"] or s["padding_mode"] != "zeros":
                text = "# flip and the border mode apply to conv2d only\n" + text
        else:
            padding = self.padding()
            mode = s["padding_mode"]
            text = (f"conv2d(x, {kernel}" + _keywords(
                **common, padding=padding or None,
                padding_mode=None if mode == "zeros" else mode,
                fill_value=s["fill_value"] if mode == "constant" and s["fill_value"] else None,
                flip=True if s["flip"] else None, groups=groups) + ")")
        return self._making() + text

    def torch_call(self, g):
        """The same result computed by PyTorch, as code that runs after `call`'s first lines."""
        s = self.settings
        kernel = "w" if self.layer else "k"
        lead = "[None]" if self.layer else "[None, None]"
        take = "[0]" if self.layer else "[0, 0]"
        lines = ["import torch", "import torch.nn.functional as F",
                 f"xt = torch.from_numpy(x).double(){lead}",
                 f"wt = torch.from_numpy({kernel}).double()" + ("" if self.layer else lead)]
        (top, bottom), (left, right) = g.padding
        options = dict(stride=None if g.stride == (1, 1) else _short(g.stride))
        dilation = None if g.dilation == (1, 1) else _short(g.dilation)
        groups = None if s["groups"] == 1 else s["groups"]
        symmetric = top == bottom and left == right
        if s["transposed"]:
            crop = ""
            if symmetric:
                options["padding"] = _short((top, left)) or None
            else:   # PyTorch crops the same on both sides: crop the rest by slicing
                crop = (f"[..., {top}:{top + g.output_shape[0]}, "
                        f"{left}:{left + g.output_shape[1]}]")
            options.update(output_padding=_short(g.output_padding) or None, groups=groups,
                           dilation=dilation)
            lines.append(f"F.conv_transpose2d(xt, wt{_keywords(**options)}){crop}{take}")
            return "\n".join(lines)
        mode = s["padding_mode"]
        sides = (left, right, top, bottom)       # F.pad's order: the last axis first
        if any(sides):
            if mode == "zeros" and symmetric:
                options["padding"] = _short((top, left))
            elif not _torch_pads(mode, g.input_shape, g.padding):
                lines.append("# PyTorch has no 'symmetric' border: np.pad makes it" if
                             mode == "symmetric" else f"# F.pad's {mode!r} reaches less far "
                             f"than this padding: np.pad makes it")
                axes = ((0, 0),) if self.layer else ()
                lines.append(f"xt = torch.from_numpy(np.pad(x, {axes + g.padding}, "
                             f"mode={PADDING_MODES[mode]!r})).double(){lead}")
            elif mode in ("zeros", "constant"):
                value = s["fill_value"] if mode == "constant" else 0
                lines.append(f"xt = F.pad(xt, {sides}" + (f", value={value}" if value else "")
                             + ")")
            else:
                lines.append(f"xt = F.pad(xt, {sides}, mode={mode!r})")
        flipped = ".flip(-2, -1)" if s["flip"] else ""
        options.update(dilation=dilation, groups=groups)
        lines.append(f"F.conv2d(xt, wt{flipped}{_keywords(**options)}){take}")
        return "\n".join(lines)

    def channels(self):
        """For a layer: which output channels read which input channels, and the shapes."""
        if not self.layer:
            return ""
        s = self.settings
        groups, c_in, c_out = s["groups"], s["in_channels"], s["out_channels"]
        per_in, per_out = c_in // groups, c_out // groups

        def span(first, count):
            return f"{first}" if count == 1 else f"{first}–{first + count - 1}"

        reads = "; ".join(f"output channels {span(g * per_out, per_out)} read input channels "
                          f"{span(g * per_in, per_in)}" for g in range(groups))
        shapes = f"x {self._x_shape()}, w {self._w_shape()}"
        return (f"groups={groups}: {reads}. {shapes}; drawn: input channel 0 with w[0, 0], "
                f"the part of output channel 0 that input channel 0 adds.")

    # --- the pictures ---

    def channels_picture(self, ax=None):
        """Draw which input channels each output channel reads into ``ax``; return ``ax``.

        Boxes for the input channels (left) and the output channels (right), a
        line from each output channel to every input channel of its group, one
        colour a group; the pair the main picture draws (input 0 to output 0)
        in bold. A new figure when ``ax`` is None. Raises ValueError as
        `geometry` does (groups that do not divide the channels).
        """
        from matplotlib.patches import Rectangle

        from .grid import COLORS, CURRENT, new_figure

        self.geometry()
        s = self.settings
        groups, c_in, c_out = s["groups"], s["in_channels"], s["out_channels"]
        if ax is None:
            ax = new_figure((5, 4, 0)).axes[0]
        ax.clear()
        ax.set_axis_off()
        ax.set_xlim(-0.2, 4.2)
        ax.set_ylim(max(c_in, c_out) + 0.1, -0.9)
        colours = ("#0072b2", "#009e73", "#cc79a7", "#d55e00")   # Okabe-Ito, a group each
        transposed = s["transposed"]
        for o in range(c_out):
            group = o // (c_out // groups)
            for i in range(group * (c_in // groups), (group + 1) * (c_in // groups)):
                drawn = i == 0 and o == 0
                ax.plot([1, 3], [i + 0.5, o + 0.5], color=COLORS[CURRENT] if drawn else
                        colours[group], linewidth=3 if drawn else 1.2, zorder=2 if drawn else 1,
                        gid="read")
        for x, count, name in ((0, c_in, "in"), (3, c_out, "out")):
            for channel in range(count):
                ax.add_patch(Rectangle((x, channel + 0.1), 1, 0.8, facecolor="white",
                                       edgecolor="#595959"))
                ax.text(x + 0.5, channel + 0.5, f"{name} {channel}", ha="center",
                        va="center", fontsize=8)
        ax.text(0, -0.45, "input channels", fontsize=8)
        ax.text(3, -0.45, "output channels", fontsize=8)
        ax.set_title(f"groups={groups}: {c_in // groups} input channel"
                     f"{'s' if c_in // groups > 1 else ''} an output channel"
                     + (", transposed" if transposed else ""), fontsize=8)
        return ax


    def picture(self, ax=None):
        """Draw the settings into ``ax`` (a new figure by default); return the picture.

        Raises ValueError when the settings describe no convolution
        (`View.error`).
        """
        from .forward import conv2d_picture
        from .transposed import conv_transpose2d_picture

        s = self.settings
        g = self.geometry()
        matrix = kernel = None
        if s["values"]:
            x, w = self.arrays()
            matrix, kernel = (x[0], w[0, 0]) if self.layer else (x, w)
            if s["flip"] and not s["transposed"]:
                kernel = kernel[::-1, ::-1]    # what the taps multiply: the kernel turned round
        if s["transposed"]:
            return conv_transpose2d_picture(g.input_shape, g.kernel_shape, g.stride,
                                            g.dilation, g.padding, g.output_padding, matrix,
                                            kernel, ax, s["step"])
        return conv2d_picture(g.input_shape, g.kernel_shape, g.stride, g.dilation,
                              self.padding(), s["padding_mode"], s["fill_value"], matrix,
                              kernel, ax, s["step"])
