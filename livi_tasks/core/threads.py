"""The thread budget of a process: how many threads torch, OpenMP and BLAS may keep busy.

Torch starts one thread per core. Two heavy jobs on one machine, each with every core, wait on each
other's threads: on 2 cores a chunk preparation beside a corpus generation ran 7x slower with two
torch threads than with one (BENCHMARKS.md, "Heavy tasks side by side"). Airflow tasks, the search
service and ``livi --threads`` set the budget here.
"""

from __future__ import annotations

import os
import sys

BUDGET_VARIABLE = "LIVI_TASK_THREADS"
LIBRARY_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def budget_from_environment() -> int | None:
    """``$LIVI_TASK_THREADS`` (at least 1), or None when it is not set."""
    value = os.environ.get(BUDGET_VARIABLE)
    return max(1, int(value)) if value else None


def limit_threads(threads: int) -> None:
    """Give torch, OpenMP and BLAS ``threads`` threads: before torch is imported (OpenMP reads its
    variables once), and on torch itself if it already is."""
    for variable in LIBRARY_VARIABLES:
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
