"""Stage plots_page: the HTML page `dvc plots show` and `dvc plots diff` fill in, renderable with no network.

Usage: python3 -m src.plots_page OUT_HTML
DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN (DVC issue #5679). This page carries all three inline
(their minified builds from the pip package django-js-lib-vega-embed, each checked against its sha256 pinned here)
and has no `{scripts}` placeholder, so DVC adds no <script src=...> tag; `.dvc/config` points DVC at it
(`[plots] html_template = ../plots/page.html`). Its style is plots_page.css beside this file; plots_page.js, run
before DVC's per-plot `vegaEmbed('#id', spec)`, draws every plot as SVG (a DOM dump shows each mark) without
vega-embed's action menu (its links go to the network), shows a failure in the plot's place, and counts the plots
settled in <body data-plots-rendered / data-plots-failed> (for browser tests).
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
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
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
    package = f"{SCRIPTS_PACKAGE} {metadata.version(SCRIPTS_PACKAGE)}"
    scripts = []
    for library, version, name, sha256 in SCRIPTS:
        data = (folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DatasetError(f"{package}: {name} is not {library} {version} as pinned in src/plots_page.py; "
                               "run: python3 -m pip install -r requirements.txt")
        scripts.append(data.decode("utf-8"))
    bundle = "\n".join(scripts)
    unsafe = [text for text in (*UNSAFE_IN_SCRIPT, *PLACEHOLDERS) if text in bundle.lower()]
    if unsafe:
        raise DatasetError(f"{package}: its scripts cannot be inlined in the plots page (they contain {unsafe})")
    return bundle, ", ".join(f"{library} {version}" for library, version, _, _ in SCRIPTS) + f", from {package}"


def build_page() -> bytes:
    """The page template: DVC replaces {plot_divs} (and {refresh_tag}) and writes it as dvc_plots/index.html."""
    bundle, origin = javascript_bundle()
    style, wrapper = (Path(__file__).with_suffix(suffix).read_text(encoding="utf-8") for suffix in (".css", ".js"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots</title>
<!-- {origin}, inlined: this page loads nothing from the network. -->
<style>
{style}</style>
<script>
{bundle}
</script>
<script>
{wrapper}</script>
</head>
<body>
<h1>DVC plots</h1>
<p class="about">Drawn offline with {origin}.</p>
{{plot_divs}}
</body>
</html>
""".encode()


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
