"""Fixtures shared by the attack tests (each test file also runs on its own)."""

from __future__ import annotations

import pytest

from .common import Breast, load_breast


@pytest.fixture(scope="session")
def breast() -> Breast:
    return load_breast()
