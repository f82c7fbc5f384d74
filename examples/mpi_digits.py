"""Data-parallel training over MPI: each rank holds a share of the digits, one model is trained.

    pip install "fastnn[mpi]"
    mpirun -n 2 python examples/mpi_digits.py

Every rank loads its own rows (here: a slice of the training rows, as if read from its own
file), ``fastnn.distributed.fit`` trains one model over all of them (one Allreduce of the
summed gradient per step) and every rank ends with the same model: each reports the same
test accuracy and parameter checksum (rank 0 prints the reports in rank order). The model
equals the single-process fit on all the training rows (to rounding); rank 0 checks that
and saves the model.
"""

import hashlib
import tempfile
import warnings
from pathlib import Path

import numpy as np
from mpi4py import MPI
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn.distributed import fit

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
mine = np.array_split(np.arange(len(y_train)), size)[rank]  # this rank's rows, in rank order

settings = dict(hidden_layer_sizes=(64,), solver="adam", batch_size=128, max_iter=30, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # max_iter reached
    model = fit(fastnn.MLPClassifier(**settings), X_train[mine], y_train[mine], comm=comm)

accuracy = model.score(X_test, y_test)
checksum = hashlib.sha256(b"".join(p.tobytes() for p in model.coefs_ + model.intercepts_)).hexdigest()[:12]
report = (f"rank {rank}/{size}: {len(mine)} rows, {model.n_iter_} epochs, test accuracy {accuracy:.4f}, "
          f"parameters {checksum}")
reports = comm.gather(report, root=0)  # printed by one rank: mpirun may interleave the ranks' output
if rank == 0:
    print("\n".join(reports), flush=True)

if rank == 0:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = fastnn.MLPClassifier(**settings).fit(X_train, y_train)
    difference = max(np.abs(a - b).max() for a, b in zip(model.coefs_, single.coefs_))
    print(f"single-process fit on all {len(y_train)} rows: accuracy {single.score(X_test, y_test):.4f}, "
          f"largest weight difference {difference:.1e}")
    path = Path(tempfile.mkdtemp()) / "mpi_digits.npz"
    model.save(path)
    print(f"saved to {path}; loaded model's accuracy {fastnn.load(path).score(X_test, y_test):.4f}")
