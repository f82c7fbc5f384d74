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
- :mod:`.blas` — ``_gemm``, ``_inplace_gemm_update`` (OpenBLAS, called by name)
- :mod:`.epoch` — ``_gather_rows``, ``_train_batch``, ``_train_epoch``
- :mod:`.split` — ``_train_epoch_share``: one worker's part of an epoch whose
  hidden units are shared out to worker threads
- :mod:`.sync` — ``_arrive_and_wait``: the workers' spin barrier (LLVM atomics)

Every elementwise, row-wise and reduction kernel is written with ``prange``
over independent rows (or row chunks with private partial sums) but compiled
serial by default: inside an epoch BLAS owns the cores, and ``bench/threads.py``
measured no gain from ``parallel=True`` kernels beside a 2-thread BLAS (and a
40x to 400x loss when both pools run 2 threads). ``FASTNN_PARALLEL_KERNELS=1``
builds the parallel variant for that measurement (:mod:`._jit`). The cores are
shared out instead by :mod:`.split`, whose workers are Python threads running
the serial kernels without the GIL. The GEMMs are BLAS calls; the epoch and
batch drivers only sequence the kernels. All kernels are cached on disk
(``cache=True``) in the serial build.
"""
