"""The book screenshot helper: finds the pages, renders them headless, says what is missing."""
import shutil

import pytest
from PIL import Image

from cotlab.experiments.screenshots import book_pages, screenshot_book


def test_a_missing_book_says_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cotlab reproduce"):
        book_pages(tmp_path)


def test_a_wrong_html_path_is_blamed_before_the_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser either: the path must be what the error is about
    with pytest.raises(FileNotFoundError, match=r"no built book at /nonexistent \(does not exist\); build it with "
                                                r"`cotlab reproduce"):
        screenshot_book("/nonexistent", tmp_path / "shots")
    with pytest.raises(FileNotFoundError, match="holds no index.html"):
        screenshot_book(tmp_path, tmp_path / "shots")
    assert not (tmp_path / "shots").exists()


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
