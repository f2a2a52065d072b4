"""Generalized 1-, 2- and 3-D convolution in Python and NumPy, written to be used and to be read.

>>> from convolution import conv2d
>>> conv2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 0], [0, 1]], padding=1).tolist()
[[1, 2, 3, 0], [4, 6, 8, 3], [7, 12, 14, 6], [0, 7, 8, 9]]

Map of the package (imports point down the list, never up):

``cli/``
    The command line: ``python -m convolution filter INPUT OUTPUT``,
    ``animate``, ``explore`` and ``figures`` (``__main__.py`` only calls
    it). ``options.py`` (its errors and the types of its options),
    ``parser.py``, ``commands.py`` (one function a command),
    ``progress.py`` and ``files.py``: paths checked first, atomic writes that
    no error, Ctrl-C or SIGTERM leaves half done, images read and written
    without losing precision, kernel files. Needs imageio, imported only
    when used.
``images/``
    ``filter.py``: ``apply_filter_to_image``, which filters pictures of any
    dtype and channel count; ``kernels.py``: the kernel library (gaussian,
    sharpen, sobel, ...) and ``get_kernel``.
``pictures/``
    ``plot_conv2d``, ``plot_conv_transpose2d``: the cells one cell reads or
    spreads into; ``animate_conv2d``, ``animate_conv_transpose2d``: those
    pictures, one frame per cell; ``plot_conv1d``, ``animate_conv1d``: a
    signal as a strip of cells (the causal case too); ``explore``: an
    explorer to drag; the README's figures. Drawn from the same index
    arithmetic as the loops; they show themselves in Jupyter. Need
    matplotlib (and ipywidgets, for the explorer), imported only when a
    picture is drawn.
``conv_nd.py``
    ``conv1d`` and ``conv3d`` (signals, volumes and video), their transposed
    convolutions and gradients: everything ``conv2d`` has, on every axis,
    built on the 2-D functions or on the fast paths below.
``depth.py``
    A 3-D convolution, its transpose and its gradients as 2-D ones, one per
    depth tap, on blocks of slices read through the depth border's source
    map: the work ``conv_nd.py`` routes to the 2-D functions.
``conv.py``
    ``conv2d`` (a filter, or a CNN layer with channels, groups and bias),
    ``conv_transpose2d`` and ``conv2d_backward``, the public functions:
    validate, then run the loops or a fast path.
``chunked.py``
    Dask arrays (images larger than memory): ``conv2d`` and
    ``apply_filter_to_image`` hand them here, to be computed lazily, chunk by
    chunk, with the halos the kernel needs. Dask is imported only then.
``reference.py``
    The tutorial: the convolution one output cell at a time, in plain loops;
    its border, output shape, stride, dilation, 'same' and 'full'. Then
    ``reference_layers.py``: a CNN layer, the transposed convolution and the
    gradients, the same way; and ``reference_nd.py``: the loops for any
    number of axes. Every fast path is tested against them.
``fast/``
    The fast paths, one file each, whose docstrings teach their idea, cost
    and limits beside their plan: ``direct.py``, ``polyphase.py`` (stride
    phases read contiguously), ``banded.py`` and ``banded_rows.py`` (band-matrix
    products, in tiles of columns or rows of the whole width),
    ``separable.py`` (low-rank kernels), ``fft.py`` (overlap-save),
    ``layer.py`` (a CNN layer's sums over channels as matrix products,
    forward and for the kernel's gradient), ``winograd.py`` (a 3 x 3 layer
    at stride 1 by Winograd's F(2 x 2, 3 x 3): 16 products of all tiles
    instead of 36 multiply-adds a tile; ``winograd4.py``, F(4 x 4, 3 x 3),
    36 instead of 144; ``winograd_layout.py``, what the two tile sizes share;
    ``winograd_gradient.py``, the kernel's gradient by F(3 x 3, 2 x 2)) and ``subpixel.py`` (the transposed
    convolution's stride phases in one band product); for ``conv1d`` and
    ``conv3d``, ``fold1d.py`` (a long signal folded into rows, its sums as
    Toeplitz products) and ``depth3d.py`` (a volume's depth and height taps
    as one band-matrix product per output slice). ``__init__.py`` holds the registry of paths and
    the planner 'auto' asks; ``operations.py`` puts every operation (a
    layer, the transposed convolution, both gradients) in that one form and
    routes it; ``phases.py``,
    ``cache.py`` and ``costs.py`` hold what the paths share.
``driver/``
    What the fast paths run on: strip planning (``strips.py``), the thread
    pool (``pool.py``, and the progress it reports: ``report_progress``, for
    the command line), each thread's scratch memory (``arena.py``) and BLAS
    kept to one thread inside the paths (``blas.py``).
``settings.py``
    The tuning values (strip sizes, thread counts, the cost model's prices),
    read per call; ``settings.using(...)`` changes them for a block.
``dtypes.py``
    The dtype rules: what a call computes in and returns, what BLAS takes.
``padding.py``
    Border modes (zeros, constant, reflect, symmetric, replicate, circular),
    their source maps (which input cell each padded cell copies, and the runs
    of them one slice copies), and ``Padded``, which hands out any region of
    the padded input.
``geometry.py``
    The output-shape formulas (forward and transposed), the padding 'same'
    and 'full' add, the cells an output cell reads and an input cell spreads
    into, and the stride phases, written once and shared by all of the
    above.
``shapes.py``
    Parameter normalisation (stride, dilation, padding and axes as tuples,
    checked) and the channels and groups of a layer.
``checks.py``
    The argument checks every public function shares: arrays of numbers,
    kernels, a choice from a list.
"""
#: The version; pyproject.toml reads it from here.
__version__ = "0.1.0"

from .conv import LAYER_METHODS, METHODS, conv2d, conv2d_backward, conv_transpose2d
from .conv_nd import (ND_METHODS, conv1d, conv1d_backward, conv3d, conv3d_backward,
                      conv_transpose1d, conv_transpose3d)
from .geometry import conv_output_shape, conv_transpose_output_shape, resolve_padding
from .images import KERNELS, apply_filter_to_image, box_kernel, gaussian_kernel, get_kernel
from .padding import PADDING_MODES
from .pictures import (animate_conv1d, animate_conv2d, animate_conv_transpose2d, explore,
                       explore_window, plot_conv1d, plot_conv2d, plot_conv_transpose2d)
from .reference import conv2d_loops, conv2d_slices
from .reference_layers import conv2d_backward_loops, conv2d_layer_loops, conv_transpose2d_loops
from .reference_nd import conv_transposend_loops, convnd_layer_loops, convnd_loops

__all__ = ["conv2d", "conv_transpose2d", "conv2d_backward", "conv_output_shape",
           "conv_transpose_output_shape", "resolve_padding", "METHODS", "LAYER_METHODS",
           "PADDING_MODES",
           "conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "conv1d_backward",
           "conv3d_backward", "ND_METHODS",
           "apply_filter_to_image", "get_kernel", "gaussian_kernel", "box_kernel", "KERNELS",
           "plot_conv2d", "animate_conv2d", "plot_conv_transpose2d", "animate_conv_transpose2d",
           "explore", "explore_window", "plot_conv1d", "animate_conv1d",
           # the tutorial (reference.py, reference_layers.py, reference_nd.py), to read and call
           "conv2d_loops", "conv2d_slices", "conv2d_layer_loops", "conv_transpose2d_loops",
           "conv2d_backward_loops", "convnd_loops", "convnd_layer_loops",
           "conv_transposend_loops"]
