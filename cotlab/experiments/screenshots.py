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
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"no headless browser found (looked for {', '.join(BROWSERS)}); install Chromium "
                            f"(Debian/Ubuntu: apt install chromium) and rerun")


def book_pages(html_dir: Path) -> list[Path]:
    """The book's pages: the introduction, the method and every chapter."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir} holds no built book (no index.html); run `cotlab reproduce` first")
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
    browser = find_browser()
    return [screenshot(page, Path(out_dir) / f"{page.stem}.png", browser, width, height)
            for page in book_pages(Path(html_dir))]


__all__ = ["book_pages", "find_browser", "screenshot", "screenshot_book"]
