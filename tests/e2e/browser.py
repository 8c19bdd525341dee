"""A real browser for end-to-end tests: headless Chromium renders a local HTML file with the network off.

An ordinary module (not a conftest): tests import it. Chromium is the Debian package `chromium`
(/usr/bin/chromium; .ci/run installs it with apt when missing). Every launch gets a new, temporary
user-data directory (removed afterwards), a dead proxy and a host resolver that resolves nothing,
so a page that needs the network fails to draw instead of quietly fetching.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_DIR_VARIABLE = "PLOTS_SCREENSHOT_DIR"
LAUNCH_TIMEOUT_SECONDS = 60.0
# Virtual time the page gets before Chromium dumps or captures it (scripts and timers run to completion).
VIRTUAL_TIME_BUDGET_MS = 30_000
WINDOW_SIZE = (1400, 2400)
OFFLINE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    # Any fetch goes to a closed port through a proxy, and no host name resolves.
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
)
# HTML elements that have no end tag (everything else, SVG included, is closed in a DOM dump).
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class BrowserError(AssertionError):
    """Chromium is missing, failed, or ran out of time."""


def chromium_binary() -> str | None:
    """The Chromium to run: $CHROMIUM if set, else the Debian package's /usr/bin/chromium, else one on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def screenshot_directory(default: Path) -> Path:
    """$PLOTS_SCREENSHOT_DIR (created if needed) when set, else ``default`` (a test's tmp_path)."""
    configured = os.environ.get(SCREENSHOT_DIR_VARIABLE)
    directory = Path(configured) if configured else default
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _run_chromium(page: Path, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = chromium_binary()
    if binary is None:
        raise BrowserError("Chromium not found: install the Debian packages chromium and chromium-driver "
                           "(.ci/run does), or set $CHROMIUM")
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    try:
        command = [binary, *OFFLINE_FLAGS, f"--user-data-dir={profile}",
                   f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", *extra, page.resolve().as_uri()]
        env = {**os.environ, "HOME": str(profile)}  # crash reports and caches land in the temporary profile
        # A session of its own, so that a timeout ends Chromium's helper processes too.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise BrowserError(f"Chromium did not finish {page} within {timeout:.0f} s") from None
        result = subprocess.CompletedProcess(command, process.returncode, stdout.decode("utf-8", "replace"),
                                             stderr.decode("utf-8", "replace"))
        if result.returncode != 0:
            tail = "\n".join(result.stderr.splitlines()[-20:])
            raise BrowserError(f"Chromium exited {result.returncode} on {page}\n{tail}")
        return result
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Rendered:
    dom: str  # the DOM after the page's scripts ran (Chromium's --dump-dom)
    screenshot: Path  # a PNG of the top WINDOW_SIZE of the page


def render_offline(page: Path, screenshot: Path, timeout: float = LAUNCH_TIMEOUT_SECONDS) -> Rendered:
    """Load ``page`` from disk in headless Chromium with no network; return its rendered DOM and save a PNG."""
    dom = _run_chromium(page, ["--dump-dom"], timeout).stdout
    if "<html" not in dom.lower():
        raise BrowserError(f"Chromium dumped no DOM for {page}")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    width, height = WINDOW_SIZE
    _run_chromium(page, [f"--screenshot={screenshot.resolve()}", f"--window-size={width},{height}"], timeout)
    if not screenshot.is_file() or not screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
        raise BrowserError(f"Chromium wrote no PNG screenshot at {screenshot}")
    return Rendered(dom, screenshot)


class _MarkCounter(HTMLParser):
    """Counts ``element`` tags inside Vega's data-mark groups (<g class="mark-TYPE role-mark">) of one element."""

    def __init__(self, container_id: str, mark: str, element: str) -> None:
        super().__init__(convert_charrefs=True)
        self.container_id, self.mark_class, self.element = container_id, f"mark-{mark}", element
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, inside the container, inside a mark group)
        self.count = 0
        self.containers = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, dict(attrs), closed=tag in VOID_ELEMENTS)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, dict(attrs), closed=True)

    def _element(self, tag: str, attrs: dict[str, str | None], closed: bool) -> None:
        inside, in_mark = self.stack[-1][1:] if self.stack else (False, False)
        if attrs.get("id") == self.container_id:
            inside = True
            self.containers += 1
        classes = (attrs.get("class") or "").split()
        if inside and tag == "g" and self.mark_class in classes and "role-mark" in classes:
            in_mark = True
        if inside and in_mark and tag == self.element:
            self.count += 1
        if not closed:
            self.stack.append((tag, inside, in_mark))

    def handle_endtag(self, tag: str) -> None:
        # Pop to the matching open tag (tolerates the odd unclosed element).
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return


def count_marks(dom: str, plot_id: str, mark: str = "rect", element: str = "path") -> int:
    """How many data marks a Vega plot drew: ``element`` tags in its <g class="mark-MARK role-mark"> groups.

    ``plot_id`` is the id of the plot's <div> (DVC's plot name with spaces and punctuation turned into "_").
    Bars and heatmap cells are mark="rect" (one <path> each), lines mark="line" (one <path> per line),
    points mark="symbol", text mark="text" (element="text"). Axes and legends are not counted.
    """
    counter = _MarkCounter(plot_id, mark, element)
    counter.feed(dom)
    counter.close()
    if counter.containers != 1:
        raise AssertionError(f"the page has {counter.containers} elements with id {plot_id!r}, not 1")
    return counter.count


def plot_ids(dom: str) -> list[str]:
    """Ids of the plots on a DVC page: the <div>s that vega-embed turned into plots, in page order."""

    class Finder(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.ids: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            identifier = values.get("id")
            if tag == "div" and identifier and "vega-embed" in (values.get("class") or "").split():
                self.ids.append(identifier)

    finder = Finder()
    finder.feed(dom)
    finder.close()
    return finder.ids
