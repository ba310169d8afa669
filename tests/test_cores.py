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
def test_cgroup_v2_limit_reads_cpu_max(tmp_path, cpu_max, limit):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cgroup_limit(tmp_path) == limit


@pytest.mark.parametrize(("quota", "limit"), [("-1", None), ("100000", 1.0), ("250000", 2.5)])
def test_cgroup_v1_limit_reads_the_cfs_quota(tmp_path, quota, limit):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_limit(tmp_path) == limit


def test_available_cores_takes_the_smaller_of_affinity_and_limit(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert available_cores(tmp_path) == affinity  # no limit to read
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core still runs one thread
    assert available_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert available_cores(tmp_path) == affinity
