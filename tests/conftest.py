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


# The modules that take longest (about 60 to 100 s each on 2 cores), run first: xdist hands modules to workers in
# collection order (--dist loadscope), and one of these collected last would run alone at the end.
LONGEST_FIRST = ("e2e/test_memory.py", "e2e/test_remote.py", "e2e/test_experiments.py", "e2e/test_stage_errors.py",
                 "e2e/test_interruptions.py", "e2e/test_pipeline.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.relative_to(PROJECT_ROOT / "tests").as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: the rest keep their order


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than the cores this process may use: the end-to-end tests spend part of their time waiting
    for dvc, git and the S3 server, and a third worker on 2 cores fills it."""
    return len(os.sched_getaffinity(0)) + 1
