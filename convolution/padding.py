"""Border modes: how the input is extended beyond its edges before convolving.

The names are PyTorch's (``zeros``, ``reflect``, ``replicate``, ``circular``)
plus ``constant`` and ``symmetric``; each maps onto one ``np.pad`` mode, which
also defines what happens when the padding is wider than the input (the
pattern repeats).
"""
import numbers

import numpy as np

__all__ = ["PADDING_MODES", "check_padding_mode", "pad"]

#: Border mode -> np.pad mode. The same border in other libraries:
#:
#:   mode        left border of a b c d   OpenCV                scipy.ndimage
#:   zeros       0 0 0 | a b c d          BORDER_CONSTANT       'constant'
#:   constant    v v v | a b c d          BORDER_CONSTANT       'constant', cval=v
#:   reflect     d c b | a b c d          BORDER_REFLECT_101    'mirror'
#:   symmetric   c b a | a b c d          BORDER_REFLECT        'reflect'
#:   replicate   a a a | a b c d          BORDER_REPLICATE      'nearest'
#:   circular    b c d | a b c d          BORDER_WRAP           'grid-wrap'
PADDING_MODES = {
    "zeros": "constant",
    "constant": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


def check_padding_mode(padding_mode, fill_value=0):
    """Check ``padding_mode`` against the list and ``fill_value`` against the mode.

    Like ``np.pad``, a fill value is refused by every mode but 'constant',
    rather than silently ignored.
    """
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of "
                         f"{', '.join(map(repr, PADDING_MODES))}, got {padding_mode!r}")
    if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, numbers.Number):
        raise TypeError(f"fill_value must be a number, got {fill_value!r}")
    if padding_mode != "constant" and fill_value != 0:
        raise ValueError(f"fill_value is used only with padding_mode='constant', "
                         f"got fill_value={fill_value!r} with padding_mode={padding_mode!r}")


def pad(matrix, padding, padding_mode="zeros", fill_value=0):
    """``matrix`` extended by ``padding = ((top, bottom), (left, right))`` cells.

    Only the last two axes are padded. Returns ``matrix`` itself (not a copy)
    when there is nothing to add, so callers must not write into the result.

    Examples
    --------
    >>> row = np.array([[1, 2, 3, 4]])
    >>> for mode in PADDING_MODES:
    ...     print(f"{mode:>9}", pad(row, ((0, 0), (3, 0)), mode, 9 if mode == "constant" else 0))
        zeros [[0 0 0 1 2 3 4]]
     constant [[9 9 9 1 2 3 4]]
      reflect [[4 3 2 1 2 3 4]]
    symmetric [[3 2 1 1 2 3 4]]
    replicate [[1 1 1 1 2 3 4]]
     circular [[2 3 4 1 2 3 4]]
    """
    if not any(map(any, padding)):
        return matrix
    widths = ((0, 0),) * (matrix.ndim - 2) + tuple(padding)
    np_mode = PADDING_MODES[padding_mode]
    if np_mode == "constant":
        return np.pad(matrix, widths, mode="constant", constant_values=fill_value)
    return np.pad(matrix, widths, mode=np_mode)
