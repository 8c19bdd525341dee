"""Where the project is, the real dataset beside it, and the commands its documentation shows (tests run them
verbatim). An ordinary module for tests to import; tests/conftest.py holds the fixture."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The real 15,015-record dataset, beside the project (never copied into it).
REAL_DATA = Path("../shared/data/databricks-dolly-15k-ja.json")
REAL_DATA_SHA256 = "f46b9fec4a8b02b5de2c0692d5d34cd43c406285796a5050957d1c5cea3581a5"
REAL_DATA_MD5 = "87690755a1bb0e84ea1dfd6ca266e8a1"
REAL_DATA_RECORDS = 15015


def documentation_pages() -> list[Path]:
    """README.md and the pages under docs/: every command they show is run by a test."""
    return [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """Every command line in the ```sh blocks of README.md and docs/, in order."""
    commands = []
    for page in documentation_pages():
        in_block = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_block = line.strip() == "```sh" if not in_block else False
            elif in_block and line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def readme_command(command: str) -> str:
    """``command``, checked to be shown in README.md or docs/: tests run documented commands verbatim."""
    assert command in readme_commands(), f"README.md and docs/ no longer show: {command}"
    return command


def readme_python(containing: str) -> str:
    """The ```python block of README.md or docs/ that contains ``containing`` (tests run it, placeholders filled
    in)."""
    blocks = [block for page in documentation_pages()
              for block in page.read_text(encoding="utf-8").split("```python\n")[1:]]
    matching = [block.split("```", 1)[0] for block in blocks if containing in block]
    assert len(matching) == 1, f"the documentation has {len(matching)} python blocks with {containing!r}"
    return matching[0]
