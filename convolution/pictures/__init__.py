"""Pictures of the convolution: figures that show themselves, animations that play, an explorer.

Every picture is drawn from the library's own arithmetic (``geometry.py``,
``padding.py``, ``conv.py``), so it cannot disagree with it. In Jupyter a
picture is the value of a cell, with no ``%matplotlib`` magic and no file:
the figures show as PNGs, the animations as players, the explorer as
widgets. Outside a notebook nothing opens unless asked. matplotlib (and
ipywidgets, for the explorer) are imported only when a picture is drawn.

Map of the folder (imports point down the list):

``figures.py``
    The README's figures: what each draws; ``python -m convolution figures``.
``notebook.py``
    ``explore``: the explorer in Jupyter, as ipywidgets.
``window.py``
    ``explore_window``: the same explorer in a matplotlib window, with
    matplotlib's widgets (``python -m convolution explore``).
``explorer.py``
    What both explorers share: the settings (sliders and menus for every
    parameter), the picture they draw, the output-shape formula with the
    numbers filled in, the matching ``conv2d(...)`` and PyTorch calls.
``animation.py``
    ``animate_conv2d`` and ``animate_conv_transpose2d``: the pictures, one
    frame per cell, as an `Animation` that plays in Jupyter or is saved.
``forward.py``
    ``plot_conv2d``: the cells one output cell of ``conv2d`` reads.
``transposed.py``
    ``plot_conv_transpose2d``: the output cells one input cell of the
    transposed convolution adds into.
``plot1d.py``
    ``plot_conv1d`` and ``animate_conv1d``: a 1-D signal as a strip of
    cells, the cells one output cell reads; a causal filter says so.
``grid.py``
    What the pictures are made of: cells coloured by role, the colours, and
    the figure that shows itself (``PictureFigure``).
"""
from .animation import Animation, animate_conv2d, animate_conv_transpose2d
from .forward import plot_conv2d
from .notebook import explore
from .plot1d import animate_conv1d, plot_conv1d
from .transposed import plot_conv_transpose2d
from .window import explore_window

__all__ = ["plot_conv2d", "plot_conv_transpose2d", "animate_conv2d", "animate_conv_transpose2d",
           "Animation", "explore", "explore_window", "plot_conv1d", "animate_conv1d"]
