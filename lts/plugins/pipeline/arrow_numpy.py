"""Arrow columns as numpy arrays without importing pandas.

Where it sits: under the bar checks (:mod:`lts.plugins.pipeline.bars_checks`). pyarrow's own
``Array.to_numpy``, ``pa.scalar`` and ``pa.array`` import pandas when it is installed: 0.3 s of
a backtest's start-up spent on a library a backtest never uses. A column of fixed-width numbers
with no empty value is read straight off its data buffer (no copy); anything else falls back
to pyarrow's conversion.
"""

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["numbers_of"]

_DTYPES: dict[pa.DataType, Any] = {pa.int64(): np.int64, pa.float64(): np.float64,
                                   pa.int32(): np.int32, pa.int8(): np.int8,
                                   pa.int16(): np.int16}


def numbers_of(array: pa.Array | pa.ChunkedArray) -> npt.NDArray[Any]:
    """The values of a numeric column (read-only when read off the buffer)."""
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:
            return np.concatenate([numbers_of(c) for c in array.chunks]) \
                if array.num_chunks else np.array([])
        array = array.chunk(0)
    dtype = _DTYPES.get(array.type)
    if dtype is None or array.null_count:
        converted: npt.NDArray[Any] = array.to_numpy(zero_copy_only=False)
        return converted
    data = array.buffers()[1]
    if data is None:
        return np.array([], dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset *
                         np.dtype(dtype).itemsize)
