"""Pictures as they come from files: filtering them, and the kernels to filter them with.

``filter.py``
    ``apply_filter_to_image``: `conv2d` applied to an (H, W) or (H, W, C)
    picture of any dtype and channel count, alpha-weighted, rounded and
    clipped back into the picture's dtype.
``kernels.py``
    The kernel library (gaussian, sharpen, sobel, ...) and ``get_kernel``,
    which finds one by name, so a name means the same kernel everywhere.
"""
from .filter import apply_filter_to_image
from .kernels import KERNELS, box_kernel, gaussian_kernel, get_kernel

__all__ = ["apply_filter_to_image", "get_kernel", "gaussian_kernel", "box_kernel", "KERNELS"]
