"""The split epoch's spin barrier (fastnn.kernels.sync), tested directly with Python threads.

The check must not depend on how the threads happen to interleave. In each round one
worker is held back, in Python, before it arrives: until every other worker has arrived
and then either passed the barrier (which a working barrier never lets it do) or had
HOLD seconds to. A barrier that lets a worker through early is therefore caught every
time, not only when the threads interleave badly; the last test shows that it is.
"""

import threading
import time

import numpy as np
from numba import njit

from fastnn.kernels.sync import ABORT, COUNT, _arrive_and_wait, _atomic_add

N_WORKERS, N_ROUNDS = 3, 3
# A worker that is not stopped passes in microseconds; HOLD is what a working barrier
# costs the test per round.
HOLD = 0.1
TIMEOUT = 10  # seconds; only a broken test or barrier waits this long


@njit(nogil=True)
def _arrive_and_go(sync, target):
    """A broken twin of ``_arrive_and_wait``: it counts the worker in but does not wait."""
    _atomic_add(sync, COUNT, 1)
    return True


def round_through(barrier):
    """A compiled round of the test: mark this worker's arrival in ``arrived[k]``, pass
    ``barrier`` k, return how many arrivals of round k the worker then sees (-1: the
    barrier said abort)."""

    @njit(nogil=True)
    def one_round(sync, arrived, k, worker):
        arrived[k, worker] = 1
        if not barrier(sync, arrived.shape[1] * (k + 1)):
            return -1
        return np.sum(arrived[k])

    return one_round


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(1e-4)
    return condition()


def run_threads(threads, sync):
    """Start and join ``threads``; if they hang in the barrier, let them out and fail."""
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        sync[COUNT] += 10**9  # every target reached: the spinning threads return
        raise AssertionError(f"workers still waiting after {TIMEOUT} s")


def early_passes(barrier):
    """Run ``N_ROUNDS`` rounds of ``N_WORKERS`` threads through ``barrier``; return the
    ``(round, worker)`` pairs that left the barrier before every worker had arrived."""
    one_round = round_through(barrier)
    sync = np.zeros(2, np.int64)
    arrived = np.zeros((N_ROUNDS, N_WORKERS), np.int64)
    seen = np.zeros((N_ROUNDS, N_WORKERS), np.int64)

    def hold_back(k):
        assert wait_until(lambda: sync[COUNT] >= N_WORKERS * (k + 1) - 1, TIMEOUT), "others never arrived"
        wait_until(lambda: np.count_nonzero(seen[k]) == N_WORKERS - 1, HOLD)

    def work(worker):
        for k in range(N_ROUNDS):
            if worker == k % N_WORKERS:
                hold_back(k)
            seen[k, worker] = one_round(sync, arrived, k, worker)

    run_threads([threading.Thread(target=work, args=(w,)) for w in range(N_WORKERS)], sync)
    return [(k, w) for k in range(N_ROUNDS) for w in range(N_WORKERS) if seen[k, w] != N_WORKERS]


def test_no_worker_passes_a_barrier_before_the_last_arrives():
    assert early_passes(_arrive_and_wait) == []


def test_a_barrier_that_does_not_wait_is_caught():
    """The check above can fail: a barrier that only counts the workers in lets them pass early."""
    assert early_passes(_arrive_and_go) != []


def test_abort_releases_the_waiting_workers():
    """Two workers wait for a third, which failed and set ``sync[ABORT]``: both return False."""
    sync = np.zeros(2, np.int64)
    results = []

    def waiting():
        results.append(_arrive_and_wait(sync, 3))

    def fail_after_the_others_arrive():
        assert wait_until(lambda: sync[COUNT] == 2, TIMEOUT)
        time.sleep(HOLD)
        results.append("aborted")  # whatever returned before this, returned too early
        sync[ABORT] = 1

    threads = [threading.Thread(target=waiting) for _ in range(2)]
    run_threads(threads + [threading.Thread(target=fail_after_the_others_arrive)], sync)
    assert results == ["aborted", False, False]
