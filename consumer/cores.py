"""How many CPU cores this process may use: its affinity, capped by a cgroup CPU limit.

os.cpu_count() counts the node's cores, so a pod limited to one CPU on a 32-core node would
start 32 inference threads and pick the runtime meant for many cores. Kubernetes writes a CPU
limit into the container's cgroup: v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for none), v1
`cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_limit(root: Path = CGROUP) -> float | None:
    """The cgroup's CPU limit in cores, or None when there is none or it cannot be read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        v1 = root / "cpu"
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        period_us = int((v1 / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError, ZeroDivisionError):
        return None


def available_cores(root: Path = CGROUP) -> int:
    """Cores this process may run on at once, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_limit(root)
    if limit is not None:
        cores = min(cores or 1, math.ceil(limit))
    return max(1, cores or 1)
