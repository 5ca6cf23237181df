"""#11: the wheel is a complete install: the demo's example data, the report templates and the protos go with it.

`fedcredit demo` run from a wheel installed in a fresh venv (no checkout) finds its data through the package
``federated.example_data``; this test builds the wheel exactly as `pip wheel .` does and reads what it carries.
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
    for name in DEMO_DATA:
        assert f"federated/example_data/{name}" in names, name
    assert {"federated/audit/templates/report.html.j2", "federated/audit/templates/report.md.j2"} <= names
    assert "fedcredit/v1/seal.proto" in names and "fedcredit/v1/psi_pb2.py" in names
    assert "federated/security/certs/profiles.py" in names and "protocols/psi/count_first.py" in names
    # every package of the source tree is in the wheel
    for init in (ROOT / "federated").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, init
    for init in (ROOT / "protocols").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, init
    # python-paillier is the tests' oracle and a benchmark column, not a run-time dependency
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist: phe")]
    assert requires and all("extra ==" in line for line in requires), requires


def test_the_demo_finds_its_data_where_the_install_put_it() -> None:
    from federated.cli.demo import EXAMPLES

    assert (EXAMPLES / "default_credit_hetero_guest.csv").is_file()
    assert (EXAMPLES / "NOTICE").is_file()
