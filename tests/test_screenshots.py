"""The book screenshot helper: finds the pages, renders them headless, says what is missing."""
import shutil

import pytest
from PIL import Image

from cotlab.experiments.screenshots import book_pages, screenshot_book


def test_a_missing_book_says_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cotlab reproduce"):
        book_pages(tmp_path)


@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no headless Chromium on this machine")
def test_every_page_is_rendered_to_a_png(tmp_path):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "index.html").write_text("<h1>index</h1>")
    (html / "notebooks" / "01_chapter.html").write_text("<body style='background:#ff0000'><h1>chapter</h1></body>")
    shots = screenshot_book(html, tmp_path / "shots", width=320, height=240)
    assert [s.name for s in shots] == ["01_chapter.png"]
    image = Image.open(shots[0]).convert("RGB")
    assert image.size == (320, 240) and image.getpixel((300, 200)) == (255, 0, 0)  # the page, not a blank
