"""Pictures of the convolution: figures that show themselves, animations that play, an explorer.

Every picture is drawn from the library's own arithmetic (``shapes.py``,
``padding.py``, ``conv.py``), so it cannot disagree with it. In Jupyter a
picture is the value of a cell, with no ``%matplotlib`` magic and no file:
the figures show as PNGs, the animations as players, the explorer as
widgets. Outside a notebook nothing opens unless asked. matplotlib (and
ipywidgets, for the explorer) are imported only when a picture is drawn.

Map of the folder (imports point down the list):

``figures.py``
    The README's figures: what each draws; ``python -m convolution figures``.
``explorer.py``
    ``explore``: sliders and menus for every parameter, redrawing the
    picture and printing the formula and the matching calls; ipywidgets in
    Jupyter, matplotlib's widgets in a window (``explore_window``).
``animation.py``
    ``animate_conv2d`` and ``animate_conv_transpose2d``: the pictures, one
    frame per cell, as an `Animation` that plays in Jupyter or is saved.
``forward.py``
    ``plot_conv2d``: the cells one output cell of ``conv2d`` reads.
``transposed.py``
    ``plot_conv_transpose2d``: the output cells one input cell of the
    transposed convolution adds into.
``grid.py``
    What the pictures are made of: cells coloured by role, the colours, and
    the figure that shows itself (``PictureFigure``).
"""
from .animation import Animation, animate_conv2d, animate_conv_transpose2d
from .forward import plot_conv2d
from .transposed import plot_conv_transpose2d

__all__ = ["plot_conv2d", "plot_conv_transpose2d", "animate_conv2d", "animate_conv_transpose2d",
           "Animation"]
