"""#11: the wheel is a complete install: the demo's example data, the report templates and the protos go with it.

`fedcredit demo` run from a wheel installed in a fresh venv (no checkout) finds its data through the package
``fedcredit.runtime.example_data``; this test builds the wheel exactly as `pip wheel .` does and reads what it carries.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEMO_DATA = ["NOTICE", "default_credit_hetero_guest.csv", "default_credit_hetero_host.csv",
             "default_credit_platform_consent.csv", "breast_hetero_guest.csv", "breast_hetero_host.csv"]


def test_the_wheel_carries_the_demo_data_the_templates_and_the_protos(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, timeout=600, capture_output=True)
    wheel = next(tmp_path.glob("fedcredit-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    # one namespace: every file of the wheel (but its metadata) lies under fedcredit/, which has no __init__.py
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == {"fedcredit"}, top
    assert "fedcredit/__init__.py" not in names
    for name in DEMO_DATA:
        assert f"fedcredit/runtime/example_data/{name}" in names, name
    assert {"fedcredit/runtime/audit/templates/report.html.j2", "fedcredit/runtime/audit/templates/report.md.j2"} <= names
    assert "fedcredit/proto/v1/seal.proto" in names and "fedcredit/proto/v1/psi_pb2.py" in names
    assert "fedcredit/runtime/security/certs/profiles.py" in names and "fedcredit/protocols/psi/count_first.py" in names
    # every package of the source tree is in the wheel, under its namespace name
    for folder, package in (("federated", "fedcredit/runtime"), ("protocols", "fedcredit/protocols"), ("proto/fedcredit", "fedcredit/proto")):
        for init in (ROOT / folder).rglob("__init__.py"):
            assert f"{package}/{init.relative_to(ROOT / folder).as_posix()}" in names, init
    # python-paillier is the tests' oracle and a benchmark column, not a run-time dependency
    # and numba is the ckks extra's, Dask the cluster extra's
    for dependency in ("phe", "numba", "dask"):
        requires = [line for line in meta.splitlines() if line.startswith(f"Requires-Dist: {dependency}")]
        assert requires and all("extra ==" in line for line in requires), requires


def test_the_demo_finds_its_data_where_the_install_put_it() -> None:
    from fedcredit.runtime.cli.demo import EXAMPLES

    assert (EXAMPLES / "default_credit_hetero_guest.csv").is_file()
    assert (EXAMPLES / "NOTICE").is_file()


def test_ckks_is_an_extra_paillier_runs_without_numba() -> None:
    """numba is the ``ckks`` extra: without it the CLI, PSI and the Paillier engine import and run; a ring says why it cannot."""
    code = r"""
import sys
sys.modules["numba"] = None  # as if the ckks extra were not installed: `import numba` raises ImportError
import random
import fedcredit.runtime.cli.main, fedcredit.runtime.node.party, fedcredit.protocols.hetero_lr.two_party
from fedcredit.protocols.paillier import keys
from fedcredit.protocols.rlwe.ring import RingContext, ntt_primes
from fedcredit.protocols.errors import EngineUnavailableError
from fedcredit.runtime.errors import to_status_code
try:
    RingContext(16, ntt_primes(16, 2))
except EngineUnavailableError as e:
    assert "fedcredit[ckks]" in e.message and "numba" not in e.public_message.split("(")[0], e
    print("refused", e.code, to_status_code(e).name)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused ENGINE_UNAVAILABLE FAILED_PRECONDITION"
