"""Look at the built book as a reader would: a full-page screenshot of each chapter's HTML in headless Chromium.

`cotlab screenshots` (after `cotlab reproduce`) writes one PNG per page of the book to `_build/screenshots/`. Chromium
comes from the system (Debian: `apt install chromium`); nothing is downloaded.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    """The path of the first of :data:`BROWSERS` on PATH; FileNotFoundError saying how to install one if none is."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"no headless browser found (looked for {', '.join(BROWSERS)}); install Chromium "
                            f"(Debian/Ubuntu: apt install chromium) and rerun")


def book_pages(html_dir: Path) -> list[Path]:
    """The book's pages: the introduction, the method and every chapter. FileNotFoundError if ``html_dir`` holds no
    built book, saying how to build one."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        where = "does not exist" if not html_dir.exists() else "holds no index.html"
        raise FileNotFoundError(f"no built book at {html_dir} ({where}); build it with `cotlab reproduce --tier "
                                f"default` (it writes _build/html), or pass --html the directory of a built book")
    pages = sorted((html_dir / "notebooks").glob("*.html")) + sorted((html_dir / "book").glob("*.html"))
    return pages


def screenshot(page: Path, out: Path, browser: str, width: int = 1280, height: int = 6000) -> Path:
    """A PNG of `page` rendered at `width` x `height` pixels (tall enough for a chapter's figures)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.png")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},{height}", f"--screenshot={partial}", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not partial.is_file():
        raise RuntimeError(f"{browser} could not render {page}: {result.stderr.strip()[-500:]}")
    partial.replace(out)
    return out


def screenshot_book(html_dir="_build/html", out_dir="_build/screenshots", width: int = 1280,
                    height: int = 6000) -> list[Path]:
    """A PNG per page of the built book in ``html_dir``, written to ``out_dir``. The book is looked for first, the
    browser second, so a wrong path is reported as such."""
    pages = book_pages(Path(html_dir))
    browser = find_browser()
    return [screenshot(page, Path(out_dir) / f"{page.stem}.png", browser, width, height) for page in pages]


__all__ = ["book_pages", "find_browser", "screenshot", "screenshot_book"]
