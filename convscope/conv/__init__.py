"""The conv core: pure convolution arithmetic, no model walking and no hooks. Output geometry (geometry), a
conv layer as an explicit sparse matrix (conv_matrix), as a matrix-free operator with its transpose (operator),
and pooling and stacked layers as matrices (pooling). ``reference``, ``matrix`` and ``inspect`` build on it."""

from .conv_matrix import (AffineConv, MatrixTooLargeError, conv_affine, conv_bias, conv_matrix, estimate_bytes,
                          output_shape)
from .geometry import ConvGeometry, make_geometry
from .operator import conv_operator, transpose_output_padding
from .pooling import StackMatrix, avg_pool_matrix, max_pool_selection, stack_matrix

__all__ = ["AffineConv", "ConvGeometry", "MatrixTooLargeError", "StackMatrix", "avg_pool_matrix", "conv_affine",
           "conv_bias", "conv_matrix", "conv_operator", "estimate_bytes", "make_geometry", "max_pool_selection",
           "output_shape", "stack_matrix", "transpose_output_padding"]
