"""The README's figures: what each one draws, and how to write it.

``python -m convolution figures`` writes every entry of `FIGURES` with
`write_figure`; the tests check the files in ``files/`` against the same
entries. matplotlib is imported only when a figure is drawn.
"""
from ..geometry import conv_geometry, conv_transpose_geometry
from .animation import animate_conv2d, write_animation
from .forward import Conv2dPicture, conv2d_picture, plot_conv2d
from .grid import new_figure, require_matplotlib
from .transposed import ConvTranspose2dPicture, conv_transpose2d_picture

__all__ = ["FIGURES", "README_MATRIX", "README_KERNEL", "FIRST_IMAGE", "FIRST_KERNEL",
           "write_figure",
           "conv_beside_transpose"]

# The README's 9 x 14 example (README.md, "Usage"), drawn with its values.
README_MATRIX = [[1, 4, 4, 2, 1, 0, 0, 1, 0, 0, 3, 3, 3, 4],
                 [0, 2, 0, 2, 0, 3, 4, 4, 2, 1, 1, 3, 0, 4],
                 [1, 1, 0, 0, 3, 4, 2, 4, 4, 2, 3, 0, 0, 4],
                 [4, 0, 1, 2, 0, 2, 0, 3, 3, 3, 0, 4, 1, 0],
                 [3, 0, 0, 3, 3, 3, 2, 0, 2, 1, 1, 0, 4, 2],
                 [2, 4, 3, 1, 1, 0, 2, 1, 3, 4, 4, 0, 2, 3],
                 [2, 4, 3, 3, 2, 1, 4, 0, 3, 4, 1, 2, 0, 0],
                 [2, 1, 0, 1, 1, 2, 2, 3, 0, 0, 1, 2, 4, 2],
                 [3, 3, 1, 1, 1, 1, 4, 4, 2, 3, 2, 2, 2, 3]]
README_KERNEL = [[0, 1, 3, 3, 2], [0, 1, 3, 1, 3], [1, 1, 2, 0, 2], [2, 2, 3, 2, 0],
                 [1, 3, 1, 2, 0]]

# The README's first example ("In five lines"), one output cell traced.
FIRST_IMAGE = [[1, 2, 0, 3], [0, 1, 3, 1], [2, 2, 1, 0]]
FIRST_KERNEL = [[1, 0], [0, -1]]


def conv_beside_transpose(input_shape, kernel_shape, stride=1, dilation=1, padding=0,
                          output_padding=0):
    """A figure of ``conv2d`` beside the transposed convolution that undoes its shapes.

    Left, the convolution of an ``input_shape`` input; right, the transposed
    convolution with the same kernel, stride, dilation and padding, whose
    input has the left one's output shape and whose output has
    ``input_shape`` again (``output_padding`` makes up for the rows and
    columns the stride skipped). Frame ``k`` shows output cell ``k`` reading
    its window on the left and input cell ``k`` adding into the same window
    on the right: the transposed convolution is the forward one run
    backwards.

    Returns
    -------
    (Figure, show, frames)
        ``show(k)`` repaints both pictures for frame ``k`` of ``frames``.

    Raises
    ------
    ValueError
        The parameters' errors, and an output shape of the transposed
        convolution other than ``input_shape``.
    """
    require_matplotlib()
    ahead = conv_geometry(input_shape, kernel_shape, stride, dilation, padding)
    back = conv_transpose_geometry(ahead.output_shape, kernel_shape, stride, dilation, padding,
                                   output_padding)
    if back.output_shape != ahead.input_shape:
        raise ValueError(f"the transposed convolution of a {ahead.output_shape} input gives "
                         f"{back.output_shape}, not {ahead.input_shape}: choose "
                         f"output_padding to make up the difference")
    left, right = new_figure(Conv2dPicture.extent(ahead), ConvTranspose2dPicture.extent(back)).axes
    forward = conv2d_picture(input_shape, kernel_shape, stride, dilation, padding, "zeros", 0,
                             None, None, left)
    backward = conv_transpose2d_picture(ahead.output_shape, kernel_shape, stride, dilation,
                                        padding, output_padding, None, None, right)

    def show(step):
        forward.show(step)
        backward.show(step)

    return left.figure, show, forward.frames


def _animation(path, **params):
    """An animation of conv2d, one frame per output cell."""
    animate_conv2d(**params, path=path, dpi=80)


def _plot(path, **params):
    """One output cell of conv2d, as a PNG."""
    plot_conv2d(**params).savefig(path, dpi=90)


def _beside(path, **params):
    """conv2d and its transpose side by side, one frame a second (two pictures to read)."""
    fig, show, frames = conv_beside_transpose(**params)
    write_animation(path, fig, show, range(frames), fps=1, dpi=80)


#: The README's figures: file name -> (how it is drawn, its arguments).
FIGURES = {
    "stride.gif": (_animation, dict(input_shape=(5, 5), kernel_shape=(3, 3), stride=2)),
    "padding.gif": (_animation, dict(input_shape=(4, 4), kernel_shape=(3, 3), padding=1)),
    "dilation.gif": (_animation, dict(input_shape=(7, 7), kernel_shape=(3, 3), dilation=2)),
    "same-stride-2-even-kernel.gif": (_animation, dict(input_shape=(5, 5), kernel_shape=(4, 4),
                                                       stride=2, padding="same")),
    "asymmetric-padding.gif": (_animation, dict(input_shape=(4, 4), kernel_shape=(3, 3),
                                                padding=((0, 1), (2, 0)))),
    "reflect.gif": (_animation, dict(input_shape=(4, 4), kernel_shape=(3, 3), stride=2,
                                     padding=2, padding_mode="reflect")),
    "transposed.gif": (_beside, dict(input_shape=(6, 6), kernel_shape=(3, 3), stride=2,
                                     padding=1, output_padding=1)),
    "first-example.png": (_plot, dict(input_shape=FIRST_IMAGE, kernel_shape=FIRST_KERNEL,
                                      step=5)),
    "readme-example.png": (_plot, dict(input_shape=(9, 14), kernel_shape=(5, 5),
                                       stride=(2, 1), dilation=(1, 2), matrix=README_MATRIX,
                                       kernel=README_KERNEL, step=8)),
}


def write_figure(name, path):
    """Draw the README figure ``name`` (a key of `FIGURES`) into the file ``path``."""
    draw, params = FIGURES[name]
    draw(path, **params)
