"""consumer.cores: the cores a pod may use, from its affinity and its cgroup CPU limit."""

from __future__ import annotations

import os

import pytest

from consumer.cores import available_cores, cgroup_limit


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [("max 100000\n", None), ("50000 100000\n", 0.5), ("150000 100000\n", 1.5),
     ("200000 100000\n", 2.0), ("garbage\n", None)],
)  # fmt: skip
def test_cgroup_limit_reads_cpu_max(tmp_path, cpu_max, limit):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert cgroup_limit(path) == limit


def test_available_cores_takes_the_smaller_of_affinity_and_limit(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    assert available_cores(tmp_path / "absent") == affinity
    path.write_text("max 100000\n")
    assert available_cores(path) == affinity
    path.write_text("50000 100000\n")  # half a core still runs one thread at a time
    assert available_cores(path) == 1
    path.write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert available_cores(path) == affinity
