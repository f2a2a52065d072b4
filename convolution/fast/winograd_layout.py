"""What the two tile sizes of Winograd's layer share: the layer's shape and the kernel's transform.

``winograd.py`` (F(2 x 2, 3 x 3)) and ``winograd4.py`` (F(4 x 4, 3 x 3))
lay their tiles out differently, but both keep the same facts of a layer
(`Layout`) and transform the kernel the same way, ``U = G g G^T`` of every
pair of channels, by their own ``G`` (`kernel_transform`).
"""
import numpy as np

from ..padding import Padded

__all__ = ["Layout", "kernel_transform"]


def kernel_transform(g, kernel, groups):
    """``U[k, l]``: (t, t, groups, C_out / groups, C_in / groups), ``G g G^T`` of every kernel.

    ``g`` is the (t, 3) matrix ``G``; ``kernel`` is (C_out, C_in / groups,
    3, 3). One product for all pairs of channels: ``U[k, l] = sum over (a, b)
    of G[k, a] G[l, b] g[a, b]``, the (t * t, 9) matrix of those coefficients
    (rounded to the kernel's dtype) times the (9, pairs) kernels.
    """
    t = g.shape[0]
    out_channels, per_in = kernel.shape[:2]
    coefficients = np.einsum("ka,lb->klab", g, g).reshape(t * t, 9).astype(kernel.dtype)
    u = coefficients @ kernel.reshape(-1, 9).T                    # (t * t, pairs)
    return u.reshape(t, t, groups, out_channels // groups, per_in)


class Layout:
    """A layer's channels, groups, dtype, padded input and output shape, as a tile size sees them.

    Subclasses give ``outputs`` (outputs a tile along each axis), ``G`` (the
    kernel's transform) and ``positions(height)``: the tile positions of one
    channel of an image, whose ``ones`` the strips' check multiplies by.
    """

    outputs = None
    G = None

    def __init__(self, images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype):
        self.in_channels = images.shape[1]
        self.out_channels = kernel_shape[0]
        self.groups, self.dtype = groups, np.dtype(dtype)
        self.source = Padded(images.reshape((-1,) + images.shape[2:]), geometry.padding,
                             padding_mode, fill_value)
        self.height, self.width = geometry.output_shape
        # Sums one output channel's tiles of a strip, for the check: a matrix-vector product
        # (BLAS: a quarter of the time of NumPy's reduction).
        self.ones = np.ones(images.shape[0] * self.positions(), self.dtype)

    def positions(self):
        """Tile positions of one channel of one image, as a strip's buffers hold them."""
        raise NotImplementedError

    def kernel_transform(self, kernel):
        return kernel_transform(self.G, kernel, self.groups)
