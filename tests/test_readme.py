"""The README stays true: every command it shows is one a test runs, and CI runs its test command."""
from __future__ import annotations

import re

from tests.project import PROJECT_ROOT, readme_commands

TEST_COMMAND = "python3 -m pip install -r requirements-dev.txt && python3 -m pytest"


def commands_run_by_tests() -> set[str]:
    """Commands that tests pass through readme_command("...")."""
    found = set()
    for path in (PROJECT_ROOT / "tests").rglob("*.py"):
        for double, single in re.findall(r"""readme_command\(\s*(?:"([^"]*)"|'([^']*)')""",
                                         path.read_text(encoding="utf-8")):
            found.add(double or single)
    return found


def test_every_readme_command_is_run_by_a_test() -> None:
    untested = [c for c in readme_commands() if c not in commands_run_by_tests() and c != TEST_COMMAND]
    assert untested == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert TEST_COMMAND in readme_commands()
    ci_lines = [line for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == TEST_COMMAND


def test_the_error_lines_the_docs_show_are_ones_real_runs_give() -> None:
    """Each `error:` line of docs/errors.md is the expected message of a case that the end-to-end tests check
    against a real run of the stage (tests/e2e/cases.py)."""
    from tests.e2e.cases import PARAMS_CASES, SOURCE_CASES

    real = {f"error: {case.expected()}" for case in SOURCE_CASES} | {f"error: {case.message}" for case in PARAMS_CASES}
    text = (PROJECT_ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    shown = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(shown) >= 10
    assert [line for line in shown if line not in real] == []
