"""One flat parameter vector per network, and the layer table that describes it.

Layer ``l`` (``W[l]`` of shape ``(n_out, n_in)``, ``b[l]`` of ``n_out`` values)
occupies ``n_out · (n_in + 1)`` consecutive values: ``W[l]`` row by row, then
``b[l]``. Layers follow each other in order, so::

    θ = [W[0] (C order), b[0], W[1], b[1], …, W[L-1], b[L-1]]

A gradient, a velocity or a moment has the same layout, so an update rule is an
elementwise operation on flat arrays, and summing gradients across processes is
one reduction of one buffer. Every per-layer array a user sees (``weights_[l]``,
``biases_[l]``) is a view into the flat vector.

The table has one row per layer: ``(weight offset, n_out, n_in, bias offset)``,
int64, which is what the compiled kernels read (:mod:`fastnn.kernels.network`).
"""

import numpy as np

from ._aligned import aligned_empty

WEIGHT_OFFSET, N_OUT, N_IN, BIAS_OFFSET = range(4)


class Layout:
    """Where each layer's weights and biases live in the flat vector of a network.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_features, hidden widths…, n_outputs)``: at least two.
    """

    def __init__(self, sizes):
        self.sizes = tuple(int(s) for s in sizes)
        rows, offset = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            rows.append((offset, n_out, n_in, offset + n_out * n_in))
            offset += n_out * (n_in + 1)
        self.table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        self.size = offset

    @property
    def n_layers(self):
        return self.table.shape[0]

    def weights(self, flat):
        """Views ``W[l]`` of shape ``(n_out, n_in)`` into ``flat``."""
        return [flat[o:o + n_out * n_in].reshape(n_out, n_in) for o, n_out, n_in, _ in self.table]

    def biases(self, flat):
        """Views ``b[l]`` of shape ``(n_out, 1)`` into ``flat`` (the reference's column vectors)."""
        return [flat[b:b + n_out].reshape(n_out, 1) for _, n_out, _, b in self.table]

    def layer(self, flat, l):
        """The contiguous slice of ``flat`` holding layer ``l``'s ``W`` and ``b``."""
        start, n_out, n_in, _ = self.table[l]
        return flat[start:start + n_out * (n_in + 1)]

    def pack(self, weights, biases, dtype):
        """A new flat vector holding ``weights`` and ``biases`` (any array-likes of the right sizes)."""
        flat = aligned_empty(self.size, dtype)
        for view, array in zip(self.weights(flat) + self.biases(flat), list(weights) + list(biases)):
            view[...] = np.reshape(array, view.shape)
        return flat

    def tail(self, first):
        """The layout of layers ``first…`` alone (none if ``first`` is past the last), and
        where they start in this layout's vector."""
        start = int(self.table[first, WEIGHT_OFFSET]) if first < self.n_layers else self.size
        return Layout(self.sizes[first:]), start
