"""Stage plots_page: the HTML template `dvc plots show` and `dvc plots diff` fill in, renderable with no network.

Usage: python3 -m src.plots_page OUT_HTML
Unlike DVC's own page (DVC issue #5679), it inlines its scripts and has no `{scripts}` placeholder, where DVC would
put CDN <script> tags; plots_page.css and plots_page.js beside this file style it and draw the plots."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path

from src.core.errors import DatasetError, expect_args, run_cli
from src.output.files import atomic_file

# DVC's templates declare Vega-Lite v5: Vega 5, Vega-Lite 5 and vega-embed 6. (library, version, file in the package,
# sha256): npm's build/*.min.js at that version, less its last line ("//# sourceMappingURL=...").
SCRIPTS_PACKAGE = "django-js-lib-vega-embed"
SCRIPTS_MODULE = "js_lib_vega_embed"
SCRIPTS = (
    ("Vega", "5.33.0", "vega5.js", "6a6c1e9978bd78435dfbb51344d1d536319262e70f2c569ca9764ce5acc203da"),
    ("Vega-Lite", "5.23.0", "vega-lite5.js", "594f554cecafe6b992d51b7c00f4c0e5fc5f92114c7e1a641d2cf150f21cc60d"),
    ("vega-embed", "6.29.0", "vega-embed6.js", "dbd49aff8999dfb12983cbcefeefb355ae72af68d7556ddcec12193a0eb46450"),
)
# What the inlined scripts must not hold: what would end or derail a <script> element (HTML "script data" states),
# and DVC's page placeholders (dvc_render.html.HTML), which DVC would fill in.
NOT_INLINABLE = ("</script", "<!--", "<script", "{plot_divs}", "{scripts}", "{refresh_tag}")


def build_page() -> bytes:
    """The page template: DVC fills in {plot_divs} (and {refresh_tag}) and writes it as dvc_plots/index.html."""
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
    unsafe = [text for text in NOT_INLINABLE if text in bundle.lower()]
    if unsafe:
        raise DatasetError(f"{package}: its scripts cannot be inlined in the plots page (they contain {unsafe})")
    origin = ", ".join(f"{library} {version}" for library, version, _, _ in SCRIPTS) + f", from {package}"
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
