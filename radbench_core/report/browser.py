"""Open a report's index.html in headless Chromium: what the page shows, its errors, screenshots.

Why: a report can be right file by file and still broken as a page (a table that never reaches the
HTML, an image that does not decode, a link to a file the report did not write, a console error).
Only a browser shows that (issue 25). Needs Playwright for Python and an installed Chromium (Debian's
``chromium`` package, found on PATH; nothing is downloaded); :func:`missing_browser` says in one line
what is missing. ``radbench report RUN --screenshot`` calls :func:`check_report`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_DIR = "screenshots"       # under the report folder
PAGE_SHOT = "index.png"              # the whole page
MAX_SECTION_PX = 8000                # a taller section is shot from its top down to this height
_SCAN = """() => ({
  banners: [...document.querySelectorAll('.banner')].map(b => b.innerText),
  tables: document.querySelectorAll('table').length,
  captioned: document.querySelectorAll('p.caption + table').length,
  images: [...document.images].map(i => [i.alt, i.complete ? i.naturalWidth : 0]),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
  sections: [...document.querySelectorAll('h2')].map(h => [h.textContent,
      h.getBoundingClientRect().top + window.scrollY]),
  height: document.documentElement.scrollHeight,
})"""


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def missing_browser() -> str | None:
    """None when a report can be opened here; else one line naming what is missing and the fix."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("Playwright for Python is not installed: pip install 'radbench[browser]' "
                "(or pip install playwright)")
    if find_chromium() is None:
        return (f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}): install one, e.g. "
                "apt-get install chromium")
    return None


@dataclass
class PageCheck:
    """What headless Chromium saw on one report page."""
    index: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    tables: int = 0                          # every <table>
    captioned_tables: int = 0                # the report's tables (a caption paragraph, then the table)
    images: list[tuple[str, int]] = field(default_factory=list)     # (alt, naturalWidth; 0 = not shown)
    links: list[str] = field(default_factory=list)                  # every href as written
    broken_links: list[str] = field(default_factory=list)           # local hrefs with no file behind
    sections: list[str] = field(default_factory=list)               # the <h2> titles, in order
    banners: list[str] = field(default_factory=list)                # the banners' text as rendered
    screenshots: dict[str, Path] = field(default_factory=dict)      # "page" or section title -> PNG

    @property
    def problems(self) -> list[str]:
        """One line per thing wrong with the page; empty when it rendered cleanly."""
        return ([f"console error: {e}" for e in self.console_errors]
                + [f"page error: {e}" for e in self.page_errors]
                + [f"image not shown: {alt or '(no alt)'}" for alt, width in self.images if width <= 0]
                + [f"link to a missing file: {href}" for href in self.broken_links])


def local_target(index: Path, href: str) -> Path | None:
    """The file a relative link of the page points to; None for web, mail, data and in-page links."""
    parts = urlsplit(href)
    if parts.scheme or href.startswith(("#", "//")) or not parts.path:
        return None
    return (index.parent / unquote(parts.path)).resolve()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def check_report(index: str | Path, screenshot_dir: str | Path | None = None, *,
                 width: int = 1280, timeout_ms: int = 60_000) -> PageCheck:
    """Open ``index`` (a report's index.html) via file:// in headless Chromium and return what it saw.

    With ``screenshot_dir``: ``index.png`` of the whole page and one ``NN-<section>.png`` per <h2>
    section (at most MAX_SECTION_PX tall). Raises RuntimeError with :func:`missing_browser`'s line
    when no browser can be started.
    """
    index = Path(index).resolve()
    if (why := missing_browser()) is not None:
        raise RuntimeError(why)
    from playwright.sync_api import sync_playwright
    check = PageCheck(index)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: check.page_errors.append(str(e)))
            page.goto(index.as_uri(), wait_until="load", timeout=timeout_ms)
            seen = page.evaluate(_SCAN)
            check.tables, check.captioned_tables = seen["tables"], seen["captioned"]
            check.images = [(alt, int(w)) for alt, w in seen["images"]]
            check.links = list(seen["links"])
            check.sections = [title for title, _ in seen["sections"]]
            check.banners = list(seen["banners"])
            for href in check.links:
                target = local_target(index, href)
                if target is not None and not target.is_file():
                    check.broken_links.append(href)
            if screenshot_dir is not None:
                check.screenshots = _shoot(page, Path(screenshot_dir), seen, width)
        finally:
            browser.close()
    return check


def _shoot(page, folder: Path, seen: dict, width: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):               # an earlier report's sections
        stale.unlink()
    shots = {"page": folder / PAGE_SHOT}
    page.screenshot(path=str(shots["page"]), full_page=True)
    tops = [top for _, top in seen["sections"]] + [seen["height"]]
    for i, (title, top) in enumerate(seen["sections"]):
        height = min(max(tops[i + 1] - top, 1), MAX_SECTION_PX)
        path = folder / f"{i + 1:02d}-{_slug(title)}.png"
        page.screenshot(path=str(path), full_page=True,
                        clip={"x": 0, "y": top, "width": width, "height": height})
        shots[title] = path
    return shots
