"""Fixtures shared by the test files; the plain helpers they use are in tests/helpers.py.

The certificate layouts are module-scoped, as each file had them: one dev CA per test module, never shared
between modules. A module that needs another layout defines its own fixture of the same name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcredit.runtime.security.certs import CertLayout, init_certs
from helpers import PARTIES
from transcript_builder import build_job


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    """A dev CA with the coordinator, an operator and the two parties (bank, platform)."""
    return init_certs(tmp_path_factory.mktemp("pki"), list(PARTIES))


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    """A second, unrelated CA with the same node names."""
    return init_certs(tmp_path_factory.mktemp("other-pki"), list(PARTIES))


@pytest.fixture(scope="module")
def ca(layout: CertLayout) -> bytes:
    """The PEM of ``layout``'s CA certificate."""
    return layout.ca_cert.read_bytes()


@pytest.fixture(scope="module")
def job(layout: CertLayout, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three transcripts of one realistic, valid job (:func:`transcript_builder.build_job`), by node."""
    return build_job(layout, tmp_path_factory.mktemp("job"))
