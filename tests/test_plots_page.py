"""Stage plots_page (the offline page template for `dvc plots show/diff`) and the custom Vega-Lite templates in
.dvc/plots/, checked without a browser: DVC's own renderer fills them and vl-convert (a dev requirement) draws them
to SVG."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from itertools import pairwise
from pathlib import Path
from xml.etree import ElementTree

import pytest
import vl_convert
from dvc_render import VegaRenderer, render_html

from src import plots_page
from src.core.errors import run_cli
from src.plots_page import SCRIPTS, SCRIPTS_MODULE, build_page, main
from tests.project import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / ".dvc" / "plots"
CATEGORIES = ("open_qa", "general_qa", "classification", "closed_qa", "brainstorming", "information_extraction",
              "summarization", "creative_writing")
BIN_STARTS = (0, 50, 100, 200, 400, 800, 1600, 3200, 6400)
# A URL a page would fetch: src= or href= with an http(s) or protocol-relative address.
FETCHED_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def page() -> str:
    return build_page().decode("utf-8")


class _Elements(HTMLParser):
    """Every start tag with its attributes (script and style contents are text, as in a browser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.tags


def test_page_is_a_dvc_template_without_the_scripts_placeholder(page: str) -> None:
    assert page.count("{plot_divs}") == 1
    assert "{scripts}" not in page  # DVC would put its CDN <script src=...> tags there
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")
    # Vega, Vega-Lite and vega-embed inline, then the wrapper that makes DVC's vegaEmbed calls draw SVG.
    scripts = [attrs for tag, attrs in elements(page) if tag == "script"]
    assert scripts == [{}, {}]
    folder = resources.files(SCRIPTS_MODULE) / "static" / SCRIPTS_MODULE
    inlined = [page.index((folder / name).read_text(encoding="utf-8")) for _, _, name, _ in SCRIPTS]
    assert inlined == sorted(inlined)  # Vega, then Vega-Lite, then vega-embed (which defines vegaEmbed)
    assert page.index('renderer: "svg", actions: false') > inlined[-1]
    assert "<!-- Vega 5.33.0, Vega-Lite 5.23.0, vega-embed 6.29.0, from django-js-lib-vega-embed 6.29.0.3, inlined" in page


def test_page_loads_nothing_from_the_network(page: str) -> None:
    assert FETCHED_URL.findall(page) == []
    fetching = [(tag, attrs) for tag, attrs in elements(page) if {"src", "href"} & set(attrs)]
    assert fetching == []
    assert "<link" not in page.lower().split("<script", 1)[0]


def test_page_filled_in_by_dvc_has_the_plot_and_no_cdn(page: str, tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text(page, encoding="utf-8")
    renderer = VegaRenderer([{"shard": "1_of_1", "records": 3, "rev": "workspace"}], "records per shard",
                            template="bar_horizontal", x="records", y="shard")
    out = tmp_path / "dvc_plots" / "index.html"
    render_html([renderer], out, html_template=str(template))
    filled = out.read_text(encoding="utf-8")
    assert "vegaEmbed('#records_per_shard', spec);" in filled
    assert "cdn.jsdelivr.net" not in filled and FETCHED_URL.findall(filled) == []
    assert "{plot_divs}" not in filled


def test_the_same_page_every_run(tmp_path: Path, page: str) -> None:
    first, second = tmp_path / "first" / "page.html", tmp_path / "second.html"
    assert run_cli(main, [str(first)]) == 0
    assert run_cli(main, [str(second)]) == 0
    assert first.read_bytes() == second.read_bytes() == page.encode("utf-8")
    assert [p.name for p in first.parent.iterdir()] == ["page.html"]  # no temporary left beside it


def test_stage_command_writes_the_page(tmp_path: Path, page: str) -> None:
    out = tmp_path / "plots" / "page.html"
    result = subprocess.run([sys.executable, "-m", "src.plots_page", str(out)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert out.read_bytes() == page.encode("utf-8")


def test_unwritable_output_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "plots"
    blocker.write_text("a file where the directory should be\n")
    assert run_cli(main, [str(blocker / "page.html")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {blocker / 'page.html'}: cannot write the plots page (")
    assert error.count("\n") == 1 and "Traceback" not in error
    assert blocker.read_text() == "a file where the directory should be\n"


def test_wrong_arguments_print_the_usage(capsys) -> None:
    assert run_cli(main, []) == 1
    assert capsys.readouterr().err == "error: usage: python3 -m src.plots_page OUT_HTML\n"


def test_missing_scripts_package_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, SCRIPTS_MODULE, None)  # importing it now raises ModuleNotFoundError
    assert run_cli(main, [str(tmp_path / "page.html")]) == 1
    assert capsys.readouterr().err == ("error: the pip package django-js-lib-vega-embed is not installed; "
                                       "run: python3 -m pip install -r requirements.txt\n")
    assert not (tmp_path / "page.html").exists()


def test_a_script_other_than_the_pinned_one_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    library, version, name, _ = SCRIPTS[1]
    monkeypatch.setattr(plots_page, "SCRIPTS", (SCRIPTS[0], (library, version, name, "0" * 64), SCRIPTS[2]))
    assert run_cli(main, [str(tmp_path / "page.html")]) == 1
    assert capsys.readouterr().err == ("error: django-js-lib-vega-embed 6.29.0.3: vega-lite5.js is not Vega-Lite "
                                       "5.23.0 as pinned in src/plots_page.py; "
                                       "run: python3 -m pip install -r requirements.txt\n")
    assert not (tmp_path / "page.html").exists()


# --- the custom templates: filled by DVC's renderer, drawn by vl-convert ------------------------------------------
# The page inlines Vega-Lite 5.23; vl-convert's newest v5 is 5.21 (the browser tests, tests/e2e/test_plots.py, draw
# them with the page itself).
VEGA_LITE_VERSION = "5.21"

def shard_names(count: int) -> list[str]:
    return [f"{k}_of_{count}" for k in range(1, count + 1)]


def category_rows(counts: dict[str, int]) -> list[dict]:
    """plots/categories.json of each revision (shard count), with the `rev` DVC adds."""
    return [{"shard": shard, "category": category, "records": 10, "share": 12.5 + number / 10,
             "whole_share": 12.5, "deviation": round(number / 10 - 0.35, 2), "rev": rev}
            for rev, count in counts.items() for shard in shard_names(count)
            for number, category in enumerate(CATEGORIES)]


def length_rows(counts: dict[str, int]) -> list[dict]:
    """plots/lengths.json of each revision (shard count), with the `rev` DVC adds."""
    labels = [f"{start}-{stop - 1}" for start, stop in pairwise(BIN_STARTS)] + ["6400+"]
    return [{"shard": shard, "bin_start": start, "chars": label, "records": 100 - number * 10, "rev": rev}
            for rev, count in counts.items() for shard in shard_names(count)
            for number, (start, label) in enumerate(zip(BIN_STARTS, labels, strict=True))]


def draw(rows: list[dict], template: str, x: str, y: str) -> ElementTree.Element:
    renderer = VegaRenderer(rows, "a plot", template=template, template_dir=str(TEMPLATES), x=x, y=y)
    spec = renderer.get_filled_template()
    assert "<DVC_METRIC" not in json.dumps(spec)
    return ElementTree.fromstring(vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE_VERSION))


def data_marks(svg: ElementTree.Element, mark: str, element: str = "path") -> int:
    """``element``s in Vega's data-mark groups (<g class="mark-MARK role-mark ...">); axes and legends excluded."""
    namespace = "{http://www.w3.org/2000/svg}"
    return sum(len(group.findall(f".//{namespace}{element}")) for group in svg.iter(f"{namespace}g")
               if {f"mark-{mark}", "role-mark"} <= set(group.get("class", "").split()))


def svg_text(svg: ElementTree.Element) -> set[str]:
    return {"".join(node.itertext()) for node in svg.iter("{http://www.w3.org/2000/svg}text")}


@pytest.mark.parametrize("counts", [{"workspace": 4}, {"HEAD": 4, "eight": 8}, {"workspace": 16}])
def test_category_template_draws_a_cell_per_shard_and_category(counts: dict[str, int]) -> None:
    svg = draw(category_rows(counts), "category_share", "category", "deviation")
    cells = sum(counts.values()) * len(CATEGORIES)
    assert data_marks(svg, "rect") == cells
    assert data_marks(svg, "text", "text") == cells  # each cell's deviation written in it
    texts = svg_text(svg)
    assert set(counts) | set(CATEGORIES) | {"+0.35", "\u22120.35"} <= texts  # a panel per revision; signed values


def test_category_template_stays_a_heatmap_for_1024_shards() -> None:
    svg = draw(category_rows({"workspace": 1024}), "category_share", "category", "deviation")
    assert data_marks(svg, "rect") == 1024 * len(CATEGORIES)
    assert data_marks(svg, "text", "text") == 0  # no values written into sub-pixel rows
    assert float(svg.get("height", "inf")) < 800


@pytest.mark.parametrize("counts", [{"workspace": 4}, {"HEAD": 4, "eight": 8}])
def test_length_template_draws_a_line_per_shard_in_bin_order(counts: dict[str, int]) -> None:
    rows = length_rows(counts)
    rows.reverse()  # the bins are ordered by bin_start, not by the order of the data
    svg = draw(rows, "length_histogram", "chars", "records")
    assert data_marks(svg, "line") == sum(counts.values())
    assert data_marks(svg, "symbol") == sum(counts.values()) * len(BIN_STARTS)
    labels = [text for text in ("".join(node.itertext()) for node in svg.iter("{http://www.w3.org/2000/svg}text"))
              if text[:1].isdigit() and ("-" in text or text.endswith("+"))]
    assert labels[:len(BIN_STARTS)] == ["0-49", "50-99", "100-199", "200-399", "400-799", "800-1599", "1600-3199",
                                        "3200-6399", "6400+"]
    assert set(counts) <= svg_text(svg)


def test_length_template_draws_1024_shards_with_a_short_legend() -> None:
    svg = draw(length_rows({"workspace": 1024}), "length_histogram", "chars", "records")
    assert data_marks(svg, "line") == 1024
    assert data_marks(svg, "symbol") == 0  # no points on 1024 overlapping lines
    assert "\u20261009 entries" in svg_text(svg)  # the legend lists 15 shards, then how many more
