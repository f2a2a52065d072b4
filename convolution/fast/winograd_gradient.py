"""The kernel's gradient of a 3 x 3 layer by Winograd's F(3 x 3, 2 x 2): 16 products, not 36.

The gradient ``grad[o, c, a, b] = sum of grad_output[n, o, i, j] * padded[n, c,
i + a, j + b]`` is, per pair of channels, a 3 x 3 correlation of the padded
input with the output's gradient. Cut the output's gradient into 2 x 2
blocks ``g``, each meeting a 4 x 4 tile ``d`` of the padded input (the tiles
of ``winograd.py``'s F(2 x 2, 3 x 3), two cells apart), and the 3 x 3 result
of one block is Winograd's F(3 x 3, 2 x 2) at the same interpolation points
(0, 1, -1, infinity)::

    grad += A [ (P g P^T) * (B^T d B) ] A^T       (* : cell by cell, 4 x 4)

      B^T: winograd.py's      P = [1  0]     A = [1  1/2  1/2   0]
                                  [1  1]         [0  1/2 -1/2   0]
                                  [1 -1]         [0  1/2  1/2  -1]
                                  [0  1]

Over channels and tiles, cell ``(k, l)`` is one matrix product summed over
every tile of every image::

    Q[k, l] = W[k, l] @ V[k, l]^T
    (C_out, C_in)  (C_out, tiles)  (tiles, C_in)

with ``V = B^T d B`` the forward pass's input transform (its flat phases and
passes, `winograd.fetch_phases` and the rest) and ``W = P g P^T``, additions
of the output's gradient's four phases (row % 2, column % 2), laid out like
``V``, zeros at the tiles that hold no output. So the gradient is 16 products
as long as a quarter of the output, against 36 (one a tap, 'taps' of
``layer.py``) as long as all of it: 2.25 times fewer multiply-adds; ``A``
applies once, to the (4, 4, C_out, C_in) sums at the end.

Limits: as ``winograd.py``'s (3 x 3 kernels at stride 1, float32 and
float64). NaN or infinity in the data make the result so, and
``operations.kernel_gradient`` then computes it again by 'taps' (where they
land as the reference loops put them). Rounding: as the forward F(2 x 2)'s.
"""
import dataclasses
import functools

import numpy as np

from .. import driver, settings as _settings
from . import winograd

__all__ = ["plan", "kernel_gradient"]

#: ``A``: the 3 x 3 gradient from the 4 x 4 sums.
_A = np.array([[1, 0.5, 0.5, 0], [0, 0.5, -0.5, 0], [0, 0.5, 0.5, -1]])


def plan(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype, s):
    """The plan: the strips of the forward F(2 x 2, 3 x 3) (the same tiles), its threads.

    All the threads' strips together within the output's size (the forward
    pass's may take three times): the backward pass holds the input's
    gradient and its own buffers beside. Raises ValueError where
    ``winograd.py`` does not take the layer.
    """
    return winograd.plan(images, kernel_shape, geometry, groups, padding_mode, fill_value,
                         dtype, dataclasses.replace(s, winograd_outputs=2), outputs_room=1)


def kernel_gradient(grad_output, images, kernel_shape, geometry, groups, padding_mode,
                    fill_value, dtype, plan_=None):
    """The gradient with respect to the kernel, (C_out, C_in / groups, 3, 3); see the module.

    Each thread sums its strips into 4 x 4 sums of its own, added up at the
    end in a fixed order: the result does not depend on which thread took
    which strip.
    """
    if plan_ is None:
        plan_ = plan(images, kernel_shape, geometry, groups, padding_mode, fill_value, dtype,
                     _settings.current())
    tiles = plan_.detail
    out_channels, per_in = kernel_shape[:2]
    per_out = out_channels // groups
    tasks, workers = plan_.tasks, min(plan_.threads, len(plan_.tasks))
    totals = [np.zeros((4, 4, groups, per_out, per_in), dtype) for _ in range(workers)]

    def worker(arena, index):
        for images_slice, rows in tasks[index::workers]:
            arena = driver.Arena.start()
            _strip(arena, tiles, grad_output, images_slice, rows, totals[index])

    with driver.single_threaded_blas(plan_.settings.limit_blas):
        driver.run(worker, driver.Plan([(index,) for index in range(workers)], workers,
                                       plan_.ns, settings=plan_.settings))
    sums = functools.reduce(np.add, totals)
    a = _A.astype(dtype)
    grad = np.einsum("ak,klgoc,bl->gocab", a, sums, a)
    return np.ascontiguousarray(grad.reshape(out_channels, per_in, 3, 3))


def _strip(arena, tiles, grad_output, batch_slice, rows, total):
    """Add the 4 x 4 sums ``Q`` of output ``rows`` (from an even row) of ``batch_slice``."""
    n = batch_slice.stop - batch_slice.start
    c, o, s, dtype, groups = (tiles.in_channels, tiles.out_channels, tiles.s, tiles.dtype,
                              tiles.groups)
    tile_rows = -(-(rows.stop - rows.start) // 2)
    span = (tile_rows + 1) * s
    length, out_length = n * c * span, n * o * span
    phases = winograd.fetch_phases(arena, tiles, batch_slice, rows)
    # The output's gradient in four phases (row % 2, column % 2), laid out as the tiles
    # are, (C_out, n, tile rows + 1, s), zeros where a tile holds no output.
    grads = arena.take((2, 2, out_length), dtype)
    grads[...] = 0
    for p in range(2):
        for q in range(2):
            part = grad_output[batch_slice, :, rows.start + p:rows.stop:2, q::2]
            grid = grads[p, q].reshape(o, n, tile_rows + 1, s)
            np.copyto(grid[:, :, :part.shape[2], :part.shape[3]], part.swapaxes(0, 1))
    rows_in = arena.take((2, length + 1), dtype)
    cells = arena.take((2, length), dtype)              # V[k, l] of two columns l
    row_out = arena.take((2, out_length), dtype)        # (P g)[k], both column phases
    pair = arena.take((2, out_length), dtype)           # W[k, 1], W[k, 2]
    shape_in, shape_out = (2, groups, c // groups, n * span), (2, groups, o // groups, n * span)
    cells_in = cells.reshape(shape_in).swapaxes(-1, -2)
    for k in range(4):
        winograd.input_row(phases, k, s, length, rows_in)
        # Row k of P g: rows 0 and 3 are the phases themselves, 1 and 2 their sum and
        # difference.
        if k == 0 or k == 3:
            gk = grads[k // 3]
        else:
            gk = row_out
            (np.add if k == 1 else np.subtract)(grads[0], grads[1], out=row_out)
        winograd.middle_cells(rows_in, length, cells)
        np.add(gk[0], gk[1], out=pair[0])
        np.subtract(gk[0], gk[1], out=pair[1])
        total[k, 1:3] += np.matmul(pair.reshape(shape_out), cells_in)
        winograd.end_cells(rows_in, length, cells)
        total[k, ::3] += np.matmul(gk.reshape(shape_out), cells_in)
