"""The dtype rules, written once: what a call computes in, what it returns, what BLAS takes.

- Integers and bools (data, kernel, and the gradient for the backward pass)
  accumulate exactly in int64; a uint64 value above 2**63 - 1 is refused, and
  so is a fill value int64 does not hold.
- Everything else follows NumPy's promotion (``np.result_type``), except that
  float16 is accumulated in float32 and rounded once at the end.
- A bias promotes the result as adding it afterwards would (a Python float
  keeps float32).
- The paths of matrix products ('banded', 'separable', the layer's stacks)
  run through BLAS, which takes float32, float64, complex64 and complex128
  (`BLAS_DTYPES`); other dtypes keep to the tap loops.
"""
import numbers

import numpy as np

__all__ = ["BLAS_DTYPES", "compute_dtype", "is_blas"]

#: The floating dtypes BLAS multiplies.
BLAS_DTYPES = tuple(map(np.dtype, (np.float32, np.float64, np.complex64, np.complex128)))


def is_blas(dtype):
    """Whether BLAS multiplies matrices of ``dtype``."""
    return np.dtype(dtype) in BLAS_DTYPES


def _is_int64(value):
    """Whether ``value`` is a whole number (not NaN, not inf) that int64 holds."""
    if isinstance(value, numbers.Integral):
        return -2 ** 63 <= int(value) < 2 ** 63
    if np.iscomplexobj(value) or not np.isfinite(value):
        return False
    return value == int(value) and -2 ** 63 <= int(value) < 2 ** 63


def compute_dtype(arrays, fill_value=0, bias=None):
    """The dtype the paths compute in, and the dtype of the result (the rules above).

    ``arrays`` maps names to arrays (matrix and kernel; for the gradients,
    grad_output too); the names appear in the errors.
    """
    if all(array.dtype.kind in "biu" for array in arrays.values()):
        for name, array in arrays.items():
            # int(...): NumPy before 2 compares uint64 with int64 in float64, where
            # 2**63 - 1 rounds up to 2**63 and the values just above it pass.
            if array.dtype == np.uint64 and array.size and int(array.max()) >= 2 ** 63:
                raise ValueError(f"{name} holds values above 2**63 - 1, which int64 "
                                 f"accumulation cannot represent; convert it to float")
        if not _is_int64(fill_value):
            raise ValueError(f"fill_value must be an integer within int64's range when "
                             f"matrix and kernel are integers, got {fill_value!r}")
        result = np.dtype(np.int64)
        if bias is None or np.asarray(bias).dtype.kind in "biu":
            return result, result
    else:
        result = np.result_type(*arrays.values())
        if result.kind != "c" and isinstance(fill_value, numbers.Complex) and np.imag(fill_value):
            raise ValueError(f"fill_value must be real when matrix and kernel are real, "
                             f"got {fill_value!r}")
    if bias is not None:
        weak = isinstance(bias, (int, float, complex)) and not isinstance(bias, bool)
        result = np.result_type(result, bias if weak else np.asarray(bias))
    return np.promote_types(result, np.float32), result
