"""Open a page in headless Chromium (Debian's `chromium`): its DOM after scripts ran, console output, a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Every host name fails to resolve: the page must draw without the network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000",
]
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)")


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@dataclass(frozen=True)
class RenderedPage:
    dom: str
    console: list[str]
    screenshot: Path

    def element(self, element_id: str) -> str:
        """The markup from the element with this id up to the end of the first SVG inside it."""
        start = self.dom.find(f'id="{element_id}"')
        if start < 0:
            raise AssertionError(f"no element with id {element_id!r} in the rendered page")
        end = self.dom.find("</svg>", start)
        return self.dom[start:end] if end > 0 else self.dom[start:start + 2000]

    def marks(self, element_id: str, *, colours: list[str] | None = None, colour_prefix: str | None = None) -> int:
        """How many SVG shapes in the element are filled or stroked in one of `colours` (data marks, not axes)."""
        shapes = re.findall(r"<(?:path|rect|circle|polyline)\b[^>]*>", self.element(element_id))
        found = 0
        for shape in shapes:
            paints = re.findall(r'(?:fill|stroke)="([^"]+)"', shape)
            if any((colours and p.lower() in colours) or (colour_prefix and p.startswith(colour_prefix)) for p in paints):
                found += 1
        return found


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="dial-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def render(page: Path, screenshot: Path, *, width: int = 1300, height: int = 5200, timeout: float = 90) -> RenderedPage:
    """Dump the DOM (after the page's scripts ran) and take a full-size screenshot, each in a fresh profile."""
    url = page.resolve().as_uri()
    dumped = _run(["--dump-dom", url], timeout)
    if dumped.returncode != 0:
        raise AssertionError(f"chromium --dump-dom failed ({dumped.returncode}):\n{dumped.stderr[-3000:]}")
    shot = _run([f"--screenshot={screenshot}", f"--window-size={width},{height}", "--hide-scrollbars", url], timeout)
    if shot.returncode != 0 or not screenshot.exists():
        raise AssertionError(f"chromium --screenshot failed ({shot.returncode}):\n{shot.stderr[-3000:]}")
    console = [m.group(1) for line in (dumped.stderr + shot.stderr).splitlines() if (m := _CONSOLE.search(line))]
    return RenderedPage(dumped.stdout, console, screenshot)
