"""#16: the scaling benchmark's projection is arithmetic on what it measured (timings are never asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _scaling() -> Any:
    spec = importlib.util.spec_from_file_location("scaling_bench", ROOT / "benchmarks" / "scaling.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_projection_uses_the_per_core_rate_the_cluster_efficiency_and_the_measured_wire() -> None:
    s = _scaling()
    kernels = [{"executor": "serial (this process)", "workers": 1, "ops_per_s": 900.0},
               {"executor": "dask", "workers": 1, "ops_per_s": 1000.0}, {"executor": "dask", "workers": 2, "ops_per_s": 1500.0}]
    jobs = [{"n": 1000, "bytes_sent": 50_000}, {"n": 4000, "bytes_sent": 400_000}]  # the largest job: 100 bytes per id
    p = s.project(kernels, jobs, n=10**8, nodes=16, cores_per_node=32, gbps=10.0)
    assert p["cluster_efficiency"] == 0.75 and p["per_core_ops_per_s"] == 1000.0  # the best one-worker rate
    assert p["compute_s"] == pytest.approx(2 * 10**8 / (1000 * 512), abs=0.1)
    assert p["compute_s_measured"] == pytest.approx(2 * 10**8 / (1000 * 512 * 0.75), abs=0.1)
    assert p["wire_bytes_per_id"] == 100 and p["wire_s"] == pytest.approx(100 * 10**8 * 8 / 1e10, abs=0.1)
    assert p["projected_s"] == pytest.approx(p["compute_s"] + p["wire_s"], abs=0.2)
    assert p["projected_s_measured"] == pytest.approx(p["compute_s_measured"] + p["wire_s"], abs=0.2)
    assert p["published"]["secretflow_ecdh_100m_s"] == 697 and p["published"]["fate_psi_100m_s"] == 3054
    superlinear = [*kernels[:2], {"executor": "dask", "workers": 2, "ops_per_s": 2500.0}]  # noise: never above 1
    assert s.project(superlinear, [], n=10**8, nodes=1, cores_per_node=1, gbps=1.0)["cluster_efficiency"] == 1.0
