"""Plots a person can look at, offline (issue 7, item 6), through the real dvc CLI and a real browser.

What these tests need from the project (each is asserted, not assumed):
- the split stage writes the git-tracked tables plots/shards.json, plots/categories.json, plots/lengths.json,
  plots/leakage.json and plots/contamination.json;
- exactly five plots of them, in this order: records per shard (DVC's bar_horizontal), category share minus
  whole (.dvc/plots/category_share.json), record length (.dvc/plots/length_histogram.json), near-duplicate pairs
  between shards (.dvc/plots/shard_pairs.json) and contaminated records per shard (bar_horizontal). Either top-level
  `plots` in dvc.yaml with the tables as the stage's `outs` (cache: false), or the tables as the stage's `plots`
  carrying title, template, x and y themselves; not both, or DVC draws each table twice;
- the plots_page stage (python3 -m src.plots_page plots/page.html, git-ignored) and `.dvc/config`'s
  `[plots] html_template = ../plots/page.html`, so the page carries Vega inline and loads nothing.

Chromium (Debian package chromium) loads dvc_plots/index.html from disk with the network off and the tests count
the SVG marks it drew. Screenshots go to $PLOTS_SCREENSHOT_DIR, else the test's temporary directory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from dvc_render import VegaRenderer, render_html

from tests.e2e.browser import chromium_binary, count_marks, plot_ids, render_offline, screenshot_directory
from tests.e2e.repo import Repo, lock_outs
from tests.project import readme_command

pytestmark = pytest.mark.e2e

PAGE_TEMPLATE = "plots/page.html"
PLOT_TABLES = ("plots/shards.json", "plots/categories.json", "plots/lengths.json", "plots/leakage.json",
               "plots/contamination.json")
# The plots' titles, in dvc.yaml's order.
TITLES = ("records per shard", "category share minus whole (percentage points)", "record length (characters)",
          "near-duplicate record pairs between shards (exact included)",
          "records sharing text with the evaluation files")
CATEGORY_COUNT = 8
LENGTH_BINS = 9
# A URL a page would fetch: src= or href= with an http(s) or protocol-relative address.
FETCHED_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture
def chromium() -> str:
    """Chromium's path: skipped where it is not installed, a failure under CI (.ci/run installs it)."""
    binary = chromium_binary()
    if binary is None:
        message = "Chromium is not installed (Debian packages chromium and chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    return binary


def rendered_plots(repo: Repo, command: str, screenshot: Path) -> tuple[str, list[str]]:
    """Run `dvc plots show/diff ...`, check the page it wrote loads nothing, render it offline, and return the
    rendered DOM and the ids of its plots' <div>s in dvc.yaml's order: records, categories, lengths, leakage,
    contamination."""
    result = repo.sh(command)
    page = repo.path / "dvc_plots" / "index.html"
    assert page.as_uri() in result.stdout, result.stdout
    assert "No plots were loaded" not in result.stdout + result.stderr
    html = page.read_text(encoding="utf-8")
    assert FETCHED_URL.findall(html) == [], "the plots page fetches from the network"
    assert "cdn.jsdelivr.net" not in html
    rendered = render_offline(page, screenshot)
    # Exactly the five declared plots (no table drawn a second time with DVC's default template), all drawn,
    # none failed (the page's embed wrapper counts them).
    ids = plot_ids(rendered.dom)
    assert len(ids) == 5, ids
    assert 'data-plots-rendered="5"' in rendered.dom and 'data-plots-failed="0"' in rendered.dom
    assert 'class="plot-error"' not in rendered.dom
    for title in TITLES:
        assert f">{title}</text>" in rendered.dom, title
    return rendered.dom, ids


def test_plots_show_draws_the_default_sharding_offline(repo: Repo, chromium: str, tmp_path: Path) -> None:
    repo.dvc("repro")
    # The page template is a pipeline output, regenerated rather than committed; the tables are committed.
    assert PAGE_TEMPLATE in lock_outs(repo)
    assert repo.git("check-ignore", "-q", PAGE_TEMPLATE, check=False).returncode == 0
    for table in PLOT_TABLES:
        assert repo.git("check-ignore", "-q", table, check=False).returncode == 1, f"{table} is git-ignored"
        assert (repo.path / table).is_file()
    template = (repo.path / PAGE_TEMPLATE).read_text(encoding="utf-8")
    assert "{plot_divs}" in template and "{scripts}" not in template

    dom, (records, categories, lengths, leakage, contamination) = rendered_plots(
        repo, readme_command("dvc plots show"), screenshot_directory(tmp_path) / "plots-show.png")
    # 4 shards of 4000: one bar each; a heatmap cell (with its value written in) per shard and category;
    # one histogram line per shard, with a point per length bin; the sample repeats prompts across every pair of
    # its 4 shards: 6 cells, each with its count; one (zero) bar of contaminated records per shard.
    assert count_marks(dom, records, "rect") == 4
    assert count_marks(dom, categories, "rect") == 4 * CATEGORY_COUNT
    assert count_marks(dom, categories, "text", element="text") == 4 * CATEGORY_COUNT
    assert count_marks(dom, lengths, "line") == 4
    assert count_marks(dom, lengths, "symbol") == 4 * LENGTH_BINS
    assert count_marks(dom, leakage, "rect") == 6
    assert count_marks(dom, leakage, "text", element="text") == 6
    assert count_marks(dom, contamination, "rect") == 4
    for name in ("1_of_4", "4_of_4", "information_extraction", "6400+", "later shard"):
        assert name in dom


def test_plots_diff_of_two_shardings_draws_both_offline(repo: Repo, chromium: str, tmp_path: Path) -> None:
    repo.dvc("repro")
    repo.commit("default sharding: 4 shards")
    repo.python("-m", "src.reshard", "8")
    repo.dvc("exp", "run", "-n", "eight")

    dom, (records, categories, lengths, leakage, contamination) = rendered_plots(
        repo, "dvc plots diff HEAD eight", screenshot_directory(tmp_path) / "plots-diff.png")
    # Both revisions in every plot: 4 + 8 bars, 4 x 8 + 8 x 8 heatmap cells (one panel each), 4 + 8 lines,
    # 6 + 28 pairs of shards.
    assert count_marks(dom, records, "rect") == 4 + 8
    assert count_marks(dom, categories, "rect") == (4 + 8) * CATEGORY_COUNT
    assert count_marks(dom, lengths, "line") == 4 + 8
    assert count_marks(dom, lengths, "symbol") == (4 + 8) * LENGTH_BINS
    assert count_marks(dom, leakage, "rect") == 6 + 28
    assert count_marks(dom, contamination, "rect") == 4 + 8
    for name in ("HEAD", "eight", "1_of_4", "8_of_8"):
        assert name in dom


def test_the_browser_is_offline_so_dvcs_default_page_draws_nothing(chromium: str, tmp_path: Path) -> None:
    """The control: DVC's own page (Vega from cdn.jsdelivr.net) draws no plot in this browser, so the tests above
    pass because the page needs no network, not because the network was there."""
    renderer = VegaRenderer([{"shard": "1_of_1", "records": 3, "rev": "workspace"}], "records per shard",
                            template="bar_horizontal", x="records", y="shard")
    page = tmp_path / "dvc_plots" / "index.html"
    render_html([renderer], page)
    assert '<script src="https://cdn.jsdelivr.net/npm/vega@' in page.read_text(encoding="utf-8")
    rendered = render_offline(page, tmp_path / "default-page.png")
    assert count_marks(rendered.dom, "records_per_shard", "rect") == 0
    assert "<svg" not in rendered.dom
