"""fastnn's fast engine: Numba kernels for the hot paths of the reference math.

All kernels use the ``(samples, features)`` layout, the transpose of
:mod:`fastnn.reference`'s, so that a sample is one contiguous row and a
shuffled batch is a gather of rows. Weights keep the reference's
``(n_out, n_in)`` shape and memory; biases are 1-D views of the reference's
``(n_out, 1)`` arrays.

Modules and their kernels:

- :mod:`.activations` — ``_activate``, ``_bias_activate``, ``_activation_derivative``
- :mod:`.softmax` — ``_bias_softmax``, ``_inplace_softmax_cross_entropy_grad``
- :mod:`.backward` — ``_inplace_activation_backward``, ``_column_sums``
- :mod:`.update` — ``_inplace_sgd``
- :mod:`.dense` — ``_dense_forward``, ``_dense_softmax`` (BLAS GEMM + epilogue)
- :mod:`.epoch` — ``_gather_rows``, ``_train_batch``, ``_train_epoch``

Every elementwise, row-wise and reduction kernel is ``@njit(parallel=True)``:
its work splits into independent rows (or row chunks with private partial
sums). The GEMMs are BLAS calls and the epoch and batch drivers are serial
``@njit``: they only sequence the kernels. Which threads run is decided by
:func:`fastnn._threads.thread_limits` around every fit and predict; see the
README's "Threads" section for the measurements behind the choice.
All kernels are compiled with ``cache=True``.
"""
