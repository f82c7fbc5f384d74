"""fastnn's fast engine: Numba kernels for the hot paths of the reference math.

All kernels use the ``(samples, features)`` layout, the transpose of
:mod:`fastnn.reference`'s, so that a sample is one contiguous row and a
shuffled batch is a gather of rows. A network's parameters are one flat
vector with a layer table (:mod:`fastnn.layout`); the kernels cut each layer's
``W`` (the reference's ``(n_out, n_in)``) and ``b`` out of it as views. What
crosses the Python–kernel boundary travels as named tuples
(:mod:`.network`: ``Net``, ``Work``, ``Batches``; :mod:`.split`: ``Shared``,
``Share``; :mod:`.rows`: ``Crew``; :mod:`.solver`: ``Samples``, ``Solver``, ``Team``, ``Units``).

Kernels, compiled and cached on their own (``@kernel``), and the inlined helpers
(``@helper``) each one calls, module by module:

- :mod:`.epoch` — ``_run_batches``: an epoch of SGD steps, or the summed gradient of one
  batch (called by :class:`fastnn.fast.SerialEngine` and ``FastEngine._gradient``);
  ``_predict``: the probabilities of a batch; ``_gather_rows``; helpers ``_gather``, ``_batch``,
  ``_rows`` (some rows of the epoch, gathered), ``_train_batch`` (one batch: forward, backward,
  step or gradient), ``_forward``, ``_hidden_forward``, ``_layer_gradient``,
  ``_transpose_weights`` (``W[0]ᵀ`` into its buffer, once a step, where the engines read it)
- :mod:`.solver` — ``_solver_epoch``: an epoch of scikit-learn's stochastic solvers (every
  output layer and loss, sample weights, L2, SGD with momentum or Nesterov's, Adam) in one
  call (:class:`fastnn.solvers.FastSolver`), serial or one call per worker thread taking
  pieces of each batch's rows (``Team``); ``_unit_solver_epoch``: the same, the workers sharing the
  first hidden layer's units instead (``Units``; small batches); ``_objective``: the
  full-batch loss and gradient (L-BFGS); ``_predict_output``: the estimators' predictions;
  ``_rows_sums``, ``_apply_sums``: a data-parallel step's two halves
  (:mod:`fastnn.distributed`); helpers ``_summed_loss_gradient``, ``_mean_loss_gradient``,
  ``_penalty_term``, ``_penalty``, ``_in_order``, ``_step`` (a worker's share of an update,
  the elements ``_owned`` says), ``_sample_rows``, ``_gather_into``, ``_buffered``, ``_slot``,
  ``_gather_share`` and ``_gathered_rows`` (workers sharing units gather a batch ahead),
  ``_weight_sum``, ``_check_samples``,
  ``_n_batches``, ``_batch_rows``, ``_meet`` (a barrier), ``_piece_sums`` (the pieces a
  worker takes), ``_units_forward``, ``_units_loss_gradient``
- :mod:`.split` — ``_train_epoch_share``: one worker's part of an epoch whose first
  hidden layer is shared out (:class:`fastnn.split.SplitEngine`); helpers
  ``_gather_share``, ``_sum_partials``, ``_output_delta_share``, ``_upper_layers_step``
  (which calls ``_run_batches``)
- :mod:`.rows` — ``_rows_epoch_share``: one worker's part of an epoch whose batches' rows
  are cut into pieces that the workers take as they come free (:class:`fastnn.rows.RowsEngine`);
  helpers ``_train_pieces``, ``_check_crew``, ``_add_but_last`` (the pieces' gradients added
  in order but the last, which the update adds as it reads it),
  and ``_pieces``, ``_largest_piece`` (the cut; plain Python too)
- :mod:`.dense` — ``_dense_forward`` (BLAS GEMM + bias + activation); helpers
  ``_transpose_into`` (a short batch's narrow inputs; the units epoch's first hidden
  layer), ``_dense_softmax``
- :mod:`.activations` — ``_bias_activate``, ``_bias_activate_transposed``,
  ``_inplace_row_bias_activate``; ``_activate``
  and ``_activation_derivative`` (tested, not called by an epoch)
- :mod:`.softmax` — ``_inplace_softmax_cross_entropy_grad``, ``_bias_softmax``
- :mod:`.outputs` — ``_inplace_output_loss_grad`` (scikit-learn's output layers and losses:
  ``dZ`` and the per-row losses), ``_bias_output``, ``_squares_sum`` (a ``sum_kernel``:
  vector lanes), ``_inplace_l2_mean`` (the L2 term's share of the mean gradient, for the
  objective); helpers ``_l2_penalty`` (a worker's share of ``Σ‖W‖²``), ``_part_start``,
  ``_part``; ``_mean_element`` and ``_exact_reciprocal`` (inlined scalar
  functions: one element of the regularised mean, which the update kernels share)
- :mod:`.backward` — ``_inplace_activation_backward``, ``_column_sums``, ``_row_sums``,
  ``_frobenius_norm``; helper ``_backpropagate``
- :mod:`.update` — ``_inplace_sgd`` (the step over flat arrays: ``apply_step`` and the
  biases), ``_inplace_sgd_summed`` (the step from two gradients' sum: the rows epoch);
  helper ``_inplace_sgd_layer`` (a layer's step, fused into its GEMM)
- :mod:`.optimizers` — ``_inplace_momentum`` (SGD with momentum or Nesterov's),
  ``_inplace_adam``: one pass per step over θ and the rule's state, bitwise equal to
  :mod:`fastnn.optimizers`, reading the gradient through a ``Mean`` (the solver epoch's
  summed gradient becomes the regularised mean as it is read); ``_adam_learning_rate`` (an
  inlined scalar function)
- :mod:`.blas` — ``_gemm_call`` (OpenBLAS, called by name); ``_gemm_in_blocks`` (in blocks
  of rows for OpenBLAS's small-matrix kernels, where they take them, and float32 products over
  the batch in chunks of its rows, ``A·B`` in chunks of its inner size); helpers ``_gemm``,
  ``_gemm_blocks``, ``_small_block``, ``_inner_chunk``, ``_input_chunk``, ``_small_permitted``,
  ``_inplace_gemm_update``, ``_row_stride``; ``_small_kernels``, ``_inner_chunks``,
  ``_input_chunks`` (the run-time switches); ``small_input_blocks`` (plain Python: the engines'
  choice to read ``W[0]ᵀ``)
- :mod:`.network` — helpers ``_weights``, ``_bias``, ``_layer``, ``_block``,
  ``_units_below``: views into the flat arrays; ``_share``, ``_owned``: a worker's rows of a
  batch and elements of a layer; ``_with_grad``: work buffers with a piece's gradient;
  ``_short_batch``: which forward GEMM a batch takes; ``transposes_weights`` (plain Python):
  whether the first layer's forward reads ``W[0]ᵀ``
- :mod:`.sync` — helpers ``_arrive_and_wait``: the workers' spin barrier, and ``_claim``:
  the next piece of a batch (LLVM atomics)
- :mod:`._scalar` — ``activate``, ``derivative_from_output``, ``like``, ``opaque``
- :mod:`._stack` — ``stack_empty``: a kernel's scratch array on its stack (kernels allocate
  nothing and are built without reference counting: :mod:`._jit`)

Why two levels: :mod:`._jit`.

Every elementwise, row-wise and reduction kernel is written with ``prange``
over independent rows (or row chunks with private partial sums) but compiled
serial by default: inside an epoch BLAS owns the cores, and ``bench/threads.py``
measured no gain from ``parallel=True`` kernels beside a 2-thread BLAS (and a
40x to 400x loss when both pools run 2 threads). ``FASTNN_PARALLEL_KERNELS=1``
builds the parallel variant, which ``tests/test_parallel_build.py`` tests. The cores are
shared out instead by worker threads (:mod:`.split`, :mod:`.rows` and the solver's
teams): Python threads running the serial kernels without the GIL. The GEMMs are
BLAS calls; the epoch and batch drivers only sequence the kernels. All kernels are cached on disk
(``cache=True``) in the serial build.
"""
