"""Stage plots_page: the HTML page `dvc plots show` and `dvc plots diff` fill in, renderable with no network.

Usage: python3 -m src.plots_page OUT_HTML
DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN (DVC issue #5679). This page carries all
three inline and has no `{scripts}` placeholder, so DVC adds no <script src=...> tag; `.dvc/config` points DVC
at it (`[plots] html_template = ../plots/page.html`). The three are their projects' own minified builds, as the
pip package django-js-lib-vega-embed carries them (the npm packages' build/*.min.js, less the sourceMappingURL
comment), and each is checked against its sha256 pinned here before it is inlined. Every plot renders as SVG (a
DOM dump shows each mark) and without vega-embed's action menu (its links go to the network).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path

from src.core.errors import DatasetError, expect_args, run_cli
from src.output.files import atomic_file

# DVC's templates (built-in and ours) declare the Vega-Lite v5 schema: Vega 5, Vega-Lite 5 and vega-embed 6.
SCRIPTS_PACKAGE = "django-js-lib-vega-embed"
SCRIPTS_MODULE = "js_lib_vega_embed"
# (library, version, file in the package, its sha256): the npm package's build/*.min.js at that version, less its
# last line ("//# sourceMappingURL=..."), checked against npm's tarballs when pinned.
SCRIPTS = (
    ("Vega", "5.33.0", "vega5.js", "6a6c1e9978bd78435dfbb51344d1d536319262e70f2c569ca9764ce5acc203da"),
    ("Vega-Lite", "5.23.0", "vega-lite5.js", "594f554cecafe6b992d51b7c00f4c0e5fc5f92114c7e1a641d2cf150f21cc60d"),
    ("vega-embed", "6.29.0", "vega-embed6.js", "dbd49aff8999dfb12983cbcefeefb355ae72af68d7556ddcec12193a0eb46450"),
)

# DVC's page placeholders (dvc_render.html.HTML): {plot_divs} gets the plots, {refresh_tag} the optional
# <meta http-equiv="refresh">. {scripts} is left out on purpose: DVC would put its CDN <script> tags there.
PLOTS_PLACEHOLDER = "{plot_divs}"
SCRIPTS_PLACEHOLDER = "{scripts}"
REFRESH_PLACEHOLDER = "{refresh_tag}"

# Runs after the bundle has defined window.vegaEmbed and before DVC's per-plot `vegaEmbed('#id', spec)`:
# every plot renders as SVG with no action menu; a failure is shown in the plot's place, and
# <body data-plots-rendered / data-plots-failed> count the plots settled so far (for browser tests).
EMBED_WRAPPER = """\
(function () {
  "use strict";
  var embed = window.vegaEmbed;
  var settled = {rendered: 0, failed: 0};
  function record(outcome) {
    settled[outcome] += 1;
    document.body.setAttribute("data-plots-rendered", String(settled.rendered));
    document.body.setAttribute("data-plots-failed", String(settled.failed));
  }
  function offlineEmbed(element, spec, options) {
    var settings = Object.assign({}, options || {}, {renderer: "svg", actions: false});
    var result = embed(element, spec, settings);
    result.then(function () { record("rendered"); }, function (error) {
      record("failed");
      try {
        var target = typeof element === "string" ? document.querySelector(element) : element;
        var message = document.createElement("pre");
        message.className = "plot-error";
        message.textContent = "This plot could not be drawn: " + error;
        (target || document.body).appendChild(message);
      } catch (ignored) {
        document.body.appendChild(document.createTextNode("A plot could not be drawn: " + error));
      }
    });
    return result;
  }
  Object.assign(offlineEmbed, embed);
  window.vegaEmbed = offlineEmbed;
}());
"""

STYLE = """\
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK JP", sans-serif;
       margin: 24px; color: #1f2328; background: #ffffff; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px 0; }
p.about { font-size: 13px; color: #59636e; margin: 0 0 24px 0; }
body > div { display: inline-block; vertical-align: top; margin: 0 40px 40px 0; }
.plot-error { color: #b3261e; white-space: pre-wrap; }
"""

# Strings that would end or derail an inline <script> element (HTML spec, "script data" states).
UNSAFE_IN_SCRIPT = ("</script", "<!--", "<script")


def javascript_bundle() -> tuple[str, str]:
    """Vega, Vega-Lite and vega-embed, as classic scripts one after another that define window.vegaEmbed, and
    where they come from."""
    try:
        folder = resources.files(SCRIPTS_MODULE) / "static" / SCRIPTS_MODULE
    except ModuleNotFoundError:
        raise DatasetError(f"the pip package {SCRIPTS_PACKAGE} is not installed; "
                           "run: python3 -m pip install -r requirements.txt") from None
    scripts = []
    for library, version, name, sha256 in SCRIPTS:
        data = (folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DatasetError(f"{SCRIPTS_PACKAGE} {metadata.version(SCRIPTS_PACKAGE)}: {name} is not {library} "
                               f"{version} as pinned in src/plots_page.py; "
                               "run: python3 -m pip install -r requirements.txt")
        scripts.append(data.decode("utf-8"))
    bundle = "\n".join(scripts)
    lowered = bundle.lower()
    unsafe = [text for text in (*UNSAFE_IN_SCRIPT, PLOTS_PLACEHOLDER, SCRIPTS_PLACEHOLDER, REFRESH_PLACEHOLDER)
              if text in lowered]
    if unsafe:
        raise DatasetError(f"{SCRIPTS_PACKAGE} {metadata.version(SCRIPTS_PACKAGE)}: its scripts cannot be inlined "
                           f"in the plots page (they contain {unsafe})")
    origin = ", ".join(f"{library} {version}" for library, version, _, _ in SCRIPTS)
    return bundle, f"{origin}, from {SCRIPTS_PACKAGE} {metadata.version(SCRIPTS_PACKAGE)}"


def build_page() -> bytes:
    """The page template: DVC replaces {plot_divs} (and {refresh_tag}) and writes it as dvc_plots/index.html."""
    bundle, origin = javascript_bundle()
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        REFRESH_PLACEHOLDER,
        "<title>DVC plots</title>",
        f"<!-- {origin}, inlined: this page loads nothing from the network. -->",
        f"<style>\n{STYLE}</style>",
        f"<script>\n{bundle}\n</script>",
        f"<script>\n{EMBED_WRAPPER}</script>",
        "</head>",
        "<body>",
        "<h1>DVC plots</h1>",
        f'<p class="about">Drawn offline with {origin}.</p>',
        PLOTS_PLACEHOLDER,
        "</body>",
        "</html>",
        "",
    ])
    return page.encode("utf-8")


def main(argv: Sequence[str]) -> None:
    (out,) = expect_args(argv, ("OUT_HTML",), "src.plots_page")
    page = build_page()
    try:
        with atomic_file(Path(out)) as stream:
            stream.write(page)
    except OSError as error:
        raise DatasetError(f"{out}: cannot write the plots page ({error.strerror or error})") from None


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
