"""Fixtures shared by unit and end-to-end tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.project import PROJECT_ROOT, REAL_DATA


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Absolute path of the real dataset: skipped where absent (a user's clone), a failure under CI."""
    path = (PROJECT_ROOT / REAL_DATA).resolve()
    if not path.is_file():
        message = f"the real dataset {REAL_DATA} is not beside the project"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must have it)")
        pytest.skip(message)
    return path
