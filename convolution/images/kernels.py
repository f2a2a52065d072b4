"""The kernel library: named filters for pictures, and the lookup by name.

Every kernel is a small function that returns a new float64 array, so that
callers may change what they get. ``get_kernel(name, **params)`` finds one
by name and checks its parameters; `apply_filter_to_image` and the command
line both use it, so a name means the same kernel everywhere.

The kernels are written for `conv2d`, which computes cross-correlation: the
kernel is laid over the picture as printed, not rotated. That matters only
for kernels that are not symmetric (``sobel_x``, ``sobel_y``, ``emboss``).

Where a kernel has a centre, it is the cell ``((kh - 1) // 2, (kw - 1) // 2)``:
the middle for odd sizes, the upper-left of the four middle cells for even
ones. That is the cell 'same' padding lines up with each pixel at stride 1, so
the ``identity`` kernel of any size returns the picture unchanged.

Sizes are checked before anything is made: a kernel holds at most
`MAX_KERNEL_CELLS` cells (4096 x 4096, 128 MiB of float64), far more than
any filter of a picture needs, so that a typo such as ``size=10**9`` is
refused at once instead of filling the machine's memory.
"""
import inspect
import math
import numbers

import numpy as np

from ..shapes import as_pair

__all__ = ["KERNELS", "MAX_KERNEL_CELLS", "get_kernel", "kernel_parameters", "identity_kernel", "box_kernel",
           "gaussian_kernel", "sharpen_kernel", "laplacian_kernel", "sobel_x_kernel",
           "sobel_y_kernel", "emboss_kernel", "outline_kernel", "motion_blur_kernel"]


#: The most cells a library kernel may have: 4096 x 4096, 128 MiB of float64.
MAX_KERNEL_CELLS = 2 ** 24


def _size(size):
    """``size`` as a pair ``(kh, kw)``, each at least 1, ``kh * kw`` at most `MAX_KERNEL_CELLS`.

    Examples
    --------
    >>> _size(10 ** 9)
    Traceback (most recent call last):
        ...
    ValueError: size must give a kernel of at most 16777216 cells (4096 x 4096), got 1000000000, which gives 1000000000000000000 cells
    """
    kh, kw = as_pair(size, "size")
    if kh * kw > MAX_KERNEL_CELLS:
        raise ValueError(f"size must give a kernel of at most {MAX_KERNEL_CELLS} cells "
                         f"(4096 x 4096), got {size!r}, which gives {kh * kw} cells")
    return kh, kw


def identity_kernel(size=3):
    """The kernel that changes nothing: a 1 at the centre, zeros elsewhere.

    Parameters
    ----------
    size : int or (int, int), default 3
        ``(kh, kw)``, each at least 1.

    Returns
    -------
    ndarray of float64, shape (kh, kw)

    Examples
    --------
    >>> identity_kernel()
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]])
    >>> identity_kernel((2, 4))     # even sizes: the upper-left middle cell
    array([[0., 1., 0., 0.],
           [0., 0., 0., 0.]])
    """
    kh, kw = _size(size)
    kernel = np.zeros((kh, kw))
    kernel[(kh - 1) // 2, (kw - 1) // 2] = 1.0
    return kernel


def box_kernel(size=3):
    """The mean of the window: every weight ``1 / (kh * kw)``.

    The simplest blur. Its square edges leave faint grid-like artefacts on
    sharp features; `gaussian_kernel` blurs more smoothly.

    Parameters
    ----------
    size : int or (int, int), default 3
        ``(kh, kw)``, each at least 1.

    Returns
    -------
    ndarray of float64, shape (kh, kw)
        Sums to 1, so flat regions keep their brightness.

    Examples
    --------
    >>> box_kernel((2, 3)) * 6
    array([[1., 1., 1.],
           [1., 1., 1.]])
    """
    kh, kw = _size(size)
    return np.full((kh, kw), 1.0 / (kh * kw))


def _opencv_sigma(n):
    """OpenCV's default standard deviation for an ``n``-tap Gaussian."""
    return 0.3 * ((n - 1) * 0.5 - 1) + 0.8


def _check_sigma(sigma):
    """``sigma`` as a pair of positive finite floats (or None for an entry), or (None, None)."""
    rule = "sigma must be None, a positive finite number or a pair of them"
    if sigma is None:
        return (None, None)
    values = (sigma, sigma) if np.ndim(sigma) == 0 else tuple(sigma)
    if len(values) != 2:
        raise ValueError(f"{rule}, got {len(values)} values: {sigma!r}")
    checked = []
    for value in values:
        if value is None:
            checked.append(None)
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{rule}, got {sigma!r}")
        try:
            value = float(value)
        except OverflowError:   # an int too large for a float: not finite as far as we go
            value = math.inf
        if not 0 < value < math.inf:
            raise ValueError(f"{rule}, got {sigma!r}")
        checked.append(value)
    return tuple(checked)


def _gaussian_1d(n, sigma):
    """``n`` samples of a Gaussian centred on the middle sample, summing to 1.

    The exponent of each sample is taken relative to that of the samples
    nearest the centre, ``-(x**2 - x0**2) / (2 * sigma**2)`` with ``x0`` 0
    (odd ``n``) or 1/2 (even ``n``), so the largest weight is ``exp(0) = 1``
    before normalising, whatever sigma is. As sigma shrinks the other
    weights underflow to 0 (dividing by sigma twice, not by ``sigma**2``,
    which itself underflows to 0 below about 1e-162), and the kernel reaches
    its limit: all the weight on the middle sample, or half on each of the two
    middle ones. Dividing before normalising would give 0 / 0 there.
    """
    x = np.arange(n) - (n - 1) / 2
    excess = x * x - x[(n - 1) // 2] ** 2       # >= 0, and 0 at the middle sample(s)
    with np.errstate(over="ignore"):             # excess / sigma**2 -> inf: a weight of 0
        weights = np.exp(-0.5 * (excess / sigma / sigma))
    return weights / weights.sum()


def gaussian_kernel(size=5, sigma=None):
    """A Gaussian blur: samples of a bell curve, normalised to sum to 1.

    Parameters
    ----------
    size : int or (int, int), default 5
        ``(kh, kw)``, each at least 1. Odd sizes keep the blur centred.
    sigma : float or (float, float) or None, default None
        The standard deviation in pixels, ``(sigma_h, sigma_w)`` or one for
        both axes; any positive finite number (see Notes for the very small
        and very large). None picks it from the size as OpenCV does; either
        entry of a pair may be None.

    Returns
    -------
    ndarray of float64, shape (kh, kw)

    Raises
    ------
    ValueError, TypeError
        A size below 1 or not an int; a sigma that is not a positive finite
        number.

    Notes
    -----
    The kernel is separable: the outer product of a column of ``kh`` and a
    row of ``kw`` samples ``exp(-x**2 / (2 * sigma**2))`` at
    ``x = i - (n - 1) / 2``, each normalised to sum to 1 (so the kernel does
    too, up to rounding). A separable kernel could be applied as two 1-D
    passes, ``kh + kw`` instead of ``kh * kw`` multiplications a pixel; this
    library applies it in one 2-D pass, which is simpler to read.

    With ``sigma=None`` an axis of ``n`` taps gets OpenCV's rule
    ``sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8``. For the odd sizes OpenCV
    supports, ``gaussian_kernel(n, sigma)`` is the outer product of
    ``cv2.getGaussianKernel(n, sigma)`` with itself (``gaussian_kernel(5, 1.2)``
    that of ``cv2.getGaussianKernel(5, 1.2)``), and ``gaussian_kernel(n)``
    that of ``cv2.getGaussianKernel(n, s)`` with ``s`` the rule's sigma. One
    difference: called with ``sigma <= 0``, ``cv2.getGaussianKernel`` does
    not sample the curve for small sizes but returns fixed tables
    (``[1, 2, 1] / 4``, ``[1, 4, 6, 4, 1] / 16``, ``[2, 7, 14, 18, 14, 7, 2] / 64``
    up to 7 taps in OpenCV 4; up to 9 in OpenCV 5). This function always
    samples it. Even sizes, which OpenCV does not document, are sampled at
    the half-integer offsets ``x = +-0.5, +-1.5, ...``.

    Every positive finite sigma gives a kernel that sums to 1. As sigma goes
    to 0 the kernel goes to its limit, which it reaches once the outer
    weights underflow (sigma below about 0.03): all the weight on the middle
    cell for odd sizes, the identity kernel; for even sizes, whose middle
    lies between two cells at equal distance, half on each of them. As sigma
    grows the kernel goes to the box kernel.

    Examples
    --------
    >>> k = gaussian_kernel(3, sigma=0.8)
    >>> k.round(4)
    array([[0.0571, 0.1248, 0.0571],
           [0.1248, 0.2725, 0.1248],
           [0.0571, 0.1248, 0.0571]])
    >>> bool(np.isclose(k.sum(), 1.0))
    True
    >>> gaussian_kernel((1, 5)).round(3)      # a horizontal blur, sigma 1.1
    array([[0.071, 0.244, 0.37 , 0.244, 0.071]])
    >>> gaussian_kernel((1, 4), sigma=1e-200)   # the limit: the two middle cells
    array([[0. , 0.5, 0.5, 0. ]])
    """
    kh, kw = _size(size)
    sigma_h, sigma_w = _check_sigma(sigma)
    column = _gaussian_1d(kh, _opencv_sigma(kh) if sigma_h is None else sigma_h)
    row = _gaussian_1d(kw, _opencv_sigma(kw) if sigma_w is None else sigma_w)
    return np.outer(column, row)


def sharpen_kernel():
    """Sharpen: the pixel, plus how much it differs from its four neighbours.

    ``identity - laplacian``: the weights sum to 1, so flat regions keep
    their brightness, and edges get a light and a dark fringe that make
    them look crisper. Fixed size, no parameters.

    Examples
    --------
    >>> sharpen_kernel()
    array([[ 0., -1.,  0.],
           [-1.,  5., -1.],
           [ 0., -1.,  0.]])
    """
    return np.array([[0., -1., 0.],
                     [-1., 5., -1.],
                     [0., -1., 0.]])


def laplacian_kernel():
    """The discrete Laplacian: the sum of the four neighbours minus 4 times the pixel.

    A second derivative: zero on flat regions and on even slopes, large on
    both sides of an edge and on fine detail. Its weights sum to 0, so on a
    picture of unsigned integers the negative half of the response is
    clipped to 0 (use a float picture to keep it). OpenCV's
    ``cv2.Laplacian(src, ddepth, ksize=1)`` uses this kernel.

    Examples
    --------
    >>> laplacian_kernel()
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]])
    """
    return np.array([[0., 1., 0.],
                     [1., -4., 1.],
                     [0., 1., 0.]])


def sobel_x_kernel():
    """Sobel's horizontal derivative: bright where the picture brightens left to right.

    A difference of the columns either side of the pixel, smoothed down the
    rows with weights 1, 2, 1. In cross-correlation, as `conv2d` computes,
    a rise in brightness from left to right gives a positive response; on
    unsigned integers the falling edges clip to 0. Same as OpenCV's
    ``cv2.Sobel(src, ddepth, 1, 0)``.

    Examples
    --------
    >>> sobel_x_kernel()
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    return np.array([[-1., 0., 1.],
                     [-2., 0., 2.],
                     [-1., 0., 1.]])


def sobel_y_kernel():
    """Sobel's vertical derivative: bright where the picture brightens top to bottom.

    The transpose of `sobel_x_kernel`. Same as OpenCV's
    ``cv2.Sobel(src, ddepth, 0, 1)``.

    Examples
    --------
    >>> sobel_y_kernel()
    array([[-1., -2., -1.],
           [ 0.,  0.,  0.],
           [ 1.,  2.,  1.]])
    """
    return sobel_x_kernel().T


def emboss_kernel():
    """Emboss: the picture as if pressed into metal, lit from the top left.

    A derivative along the diagonal plus the pixel itself (the weights sum
    to 1), so edges facing the bottom right turn light and edges facing the
    top left turn dark, on a copy of the picture.

    Examples
    --------
    >>> emboss_kernel()
    array([[-2., -1.,  0.],
           [-1.,  1.,  1.],
           [ 0.,  1.,  2.]])
    """
    return np.array([[-2., -1., 0.],
                     [-1., 1., 1.],
                     [0., 1., 2.]])


def outline_kernel():
    """Outline: 8 times the pixel minus its eight neighbours.

    An edge detector that sees edges in every direction: flat regions go
    black (the weights sum to 0) and every edge, line and speck lights up.
    The 8-neighbour cousin of `laplacian_kernel`, with the sign flipped.

    Examples
    --------
    >>> outline_kernel()
    array([[-1., -1., -1.],
           [-1.,  8., -1.],
           [-1., -1., -1.]])
    """
    return np.array([[-1., -1., -1.],
                     [-1., 8., -1.],
                     [-1., -1., -1.]])


def motion_blur_kernel(size=9):
    """Motion blur: the mean along a straight line, as from a camera moving during the shot.

    Parameters
    ----------
    size : int or (int, int), default 9
        ``(kh, kw)``, each at least 1. The line runs from the top-left
        cell to the bottom-right one: an int gives a diagonal streak,
        ``(1, n)`` a horizontal one, ``(n, 1)`` a vertical one.

    Returns
    -------
    ndarray of float64, shape (kh, kw)
        ``max(kh, kw)`` cells on the line, each ``1 / max(kh, kw)``.

    Notes
    -----
    The line has one cell in each row or each column, whichever is longer:
    step ``t = 0 .. n - 1`` (``n = max(kh, kw)``) is the cell
    ``(round(t * (kh - 1) / (n - 1)), round(t * (kw - 1) / (n - 1)))``, with
    halves rounded up.

    Examples
    --------
    >>> motion_blur_kernel(3) * 3
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    >>> motion_blur_kernel((2, 4)) * 4
    array([[1., 1., 0., 0.],
           [0., 0., 1., 1.]])
    """
    kh, kw = _size(size)
    n = max(kh, kw)
    kernel = np.zeros((kh, kw))
    steps = np.arange(n) / max(n - 1, 1)
    # floor(x + 0.5) rounds halves up; np.rint would round them to even, which
    # makes the line lopsided.
    rows = np.floor(steps * (kh - 1) + 0.5).astype(int)
    cols = np.floor(steps * (kw - 1) + 0.5).astype(int)
    kernel[rows, cols] = 1.0 / n
    return kernel


#: Kernel name -> the function that makes it. The keyword parameters of each
#: function are the parameters `get_kernel` accepts for that name.
KERNELS = {
    "identity": identity_kernel,
    "box": box_kernel,
    "gaussian": gaussian_kernel,
    "sharpen": sharpen_kernel,
    "laplacian": laplacian_kernel,
    "sobel_x": sobel_x_kernel,
    "sobel_y": sobel_y_kernel,
    "emboss": emboss_kernel,
    "outline": outline_kernel,
    "motion_blur": motion_blur_kernel,
}


def kernel_parameters(name):
    """The parameters a named kernel takes, with their defaults.

    Examples
    --------
    >>> kernel_parameters("gaussian")
    {'size': 5, 'sigma': None}
    >>> kernel_parameters("sharpen")
    {}
    """
    signature = inspect.signature(KERNELS[name])
    return {p.name: p.default for p in signature.parameters.values()}


def get_kernel(name, **params):
    """The kernel called ``name`` in the library, made with ``params``.

    Parameters
    ----------
    name : str
        One of the keys of `KERNELS`: 'identity', 'box', 'gaussian',
        'sharpen', 'laplacian', 'sobel_x', 'sobel_y', 'emboss', 'outline',
        'motion_blur'.
    **params
        The kernel's own parameters: ``size`` for 'identity', 'box' and
        'motion_blur'; ``size`` and ``sigma`` for 'gaussian'; none for the
        fixed 3 x 3 kernels. Parameters not given take their defaults.

    Returns
    -------
    ndarray of float64, shape (kh, kw)
        A new array.

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones); a parameter
        value out of range, such as a ``size`` below 1 or one of more than
        `MAX_KERNEL_CELLS` cells in all.
    TypeError
        ``name`` not a string; a parameter the kernel does not take, or of
        the wrong type.

    Examples
    --------
    >>> get_kernel("box", size=2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    >>> get_kernel("sharpen", size=5)
    Traceback (most recent call last):
        ...
    TypeError: kernel 'sharpen' takes no parameters, got size=5
    >>> get_kernel("blur")                # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: unknown kernel 'blur'; the known kernels are 'identity', 'box', 'gaussian', ...
    """
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a string, got {name!r}")
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; the known kernels are "
                         f"{', '.join(map(repr, KERNELS))}")
    accepted = kernel_parameters(name)
    unknown = [key for key in params if key not in accepted]
    if unknown:
        given = ", ".join(f"{key}={params[key]!r}" for key in unknown)
        takes = ("no parameters" if not accepted
                 else "only " + ", ".join(accepted))
        raise TypeError(f"kernel {name!r} takes {takes}, got {given}")
    return KERNELS[name](**params)
