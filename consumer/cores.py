"""How many CPU cores this process may use: its affinity, capped by a cgroup CPU limit.

os.cpu_count() counts the node's cores, so a pod limited to one CPU on a 32-core node would
start 32 inference threads and pick the runtime meant for many cores. Kubernetes puts a CPU
limit into the container's cgroup (v2: `cpu.max`, "QUOTA PERIOD" or "max PERIOD").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_limit(cpu_max: Path = CPU_MAX) -> float | None:
    """The cgroup's CPU limit in cores, or None when there is none or it cannot be read."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def available_cores(cpu_max: Path = CPU_MAX) -> int:
    """Cores this process may run on at once, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_limit(cpu_max)
    if limit is not None:
        cores = min(cores or 1, math.ceil(limit))
    return max(1, cores or 1)
