"""The machine a benchmark ran on, for the first line of its report: speed claims hold on
the kind of CPU they were measured on (these 2-core machines come with AVX-512 or AVX2 only)."""

import os
import platform

from llvmlite import binding


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def instruction_set():
    """The widest vector instruction set the CPU has, as LLVM (which compiles the kernels) sees
    it, and LLVM's name for the CPU: e.g. "AVX-512 (skylake-avx512)"."""
    features = binding.get_host_cpu_features()
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                                           ("sse4.2", "SSE4.2"), ("neon", "NEON"))
                   if features.get(flag)), "no vector extension known here")
    return f"{widest} ({binding.get_host_cpu_name()})"


def describe():
    """One line: CPU model, instruction set, cores."""
    return f"{cpu_model()}, {instruction_set()}, {os.cpu_count()} cores"
