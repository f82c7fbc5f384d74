"""What a user waits for before the first epoch: kernel compile time, cold and warm.

    python bench/compile_time.py [--kernels 15]

Runs the three common first uses, one after another, each in a fresh process
sharing one new, empty ``NUMBA_CACHE_DIR`` (a cold cache, as after
``pip install``): the default model on the digits (float32), a 784-input
float32 network (the split epoch on a multi-core machine), and the digits in
float64; then the 784-input network again on a read-only X (as a memory map opened
for reading gives), which should find everything compiled. Each process fits one epoch
twice; the first fit less the second is the compile (or cache-load) overhead, in seconds and
in CPU seconds (which another busy process on the machine inflates less). Then the same four
again, each in a new process with the now warm cache. Numba's ``numba:compile`` events give
the time spent compiling each kernel, exclusive of the kernels it calls, and how many type
signatures it was compiled for.

For scale, Numba's own floor: the first call less the second of a one-line cached kernel
(``x.sum()``), in a fresh process with a cold and then a warm cache. Whatever a library
compiles, a new process pays that much at its first Numba call: Numba loads its typing and
lowering registries (and imports the packages that register Numba extensions) then.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

from _machine import describe  # bench/, run as a script

CASES = {
    "digits float32": dict(n_features=64, n_samples=1437, dtype="float32", hidden=(128,)),
    "784-input float32": dict(n_features=784, n_samples=2048, dtype="float32", hidden=(128,)),
    "digits float64": dict(n_features=64, n_samples=1437, dtype="float64", hidden=(128,)),
    "784-input float32, read-only X": dict(n_features=784, n_samples=2048, dtype="float32", hidden=(128,),
                                           read_only=True),
}

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
from numba.core import event
from fastnn import MLPClassifier  # what a user imports (scikit-learn, Numba; not the kernels)
imported = time.perf_counter()
case = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.random((case["n_samples"], case["n_features"]))
if case.get("read_only"):  # in the fit's dtype, or its conversion would copy it writeable
    X = X.astype(case["dtype"])
    X.flags.writeable = False
y = rng.integers(0, 10, case["n_samples"])
recorder = event.RecordingListener()
event.register("numba:compile", recorder)
times, cpu = [], []
for _ in range(2):
    t, c = time.perf_counter(), time.process_time()
    MLPClassifier(hidden_layer_sizes=case["hidden"], dtype=case["dtype"], max_iter=1,
                  random_state=0).fit(X, y)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
event.unregister("numba:compile", recorder)
exclusive, stack = {}, []
for when, ev in recorder.buffer:
    if ev.is_start:
        stack.append([when, 0.0])
        continue
    began, children = stack.pop()
    spent = when - began
    if stack:
        stack[-1][1] += spent
    name = ev.data["dispatcher"].py_func.__qualname__
    total, count = exclusive.get(name, (0.0, 0))
    exclusive[name] = (total + spent - children, count + 1)
print(json.dumps({"import": imported - start, "first": times[0], "second": times[1],
                  "cpu": cpu[0] - cpu[1],
                  "kernels": exclusive}))
"""


FLOOR = r"""
import time
import numpy as np
from numba import njit


@njit(cache=True)
def total(x):
    return x.sum()


x = np.ones(3)
start = time.perf_counter()
total(x)
first = time.perf_counter() - start
start = time.perf_counter()
total(x)
print(first - (time.perf_counter() - start))
"""


def numba_floor(directory):
    """Seconds of the floor's first call over its second, cold then warm (fresh processes)."""
    path = os.path.join(directory, "floor.py")
    with open(path, "w") as file:
        file.write(FLOOR)
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(directory, "cache"))
    return [float(subprocess.run([sys.executable, path], env=env, check=True, capture_output=True,
                                 text=True).stdout) for _ in ("cold", "warm")]


def run_case(case, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=15, help="kernels to list per case")
    args = parser.parse_args()
    print(f"{describe()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as directory:
        cold, warm = numba_floor(directory)
    print(f"Numba's floor (a one-line cached kernel's first call less its second): "
          f"cold cache {cold:.2f} s, warm {warm:.2f} s")
    with tempfile.TemporaryDirectory() as cache_dir:
        for phase in ("cold", "warm"):
            total = 0.0
            print(f"\n{phase} cache:")
            for label, case in CASES.items():
                result = run_case(case, cache_dir)
                overhead = result["first"] - result["second"]
                total += overhead
                print(f"  {label}: import {result['import']:.2f} s, first fit {result['first']:.2f} s, "
                      f"second {result['second']:.3f} s, overhead {overhead:.2f} s "
                      f"({result['cpu']:.2f} s of CPU)")
                ranked = sorted(result["kernels"].items(), key=lambda kv: -kv[1][0])
                for name, (seconds, count) in ranked[:args.kernels]:
                    print(f"      {seconds:6.2f} s  {count:2d} signature(s)  {name}")
            print(f"  {phase} overhead of the {len(CASES)} together: {total:.2f} s")


if __name__ == "__main__":
    main()
