"""Tests of the HTML report: files written, images embedded, and the page rendered in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from sim.analysis import plots
from sim.analysis.report import write_report
from sim.cli import app

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2400",
)


class ImageSources(HTMLParser):
    """Collects the `src` of every `img` element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def copy_results(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="module")
def reported(mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The mixed run reported once through the command line: (directory, command output)."""
    directory = copy_results(mixed_dir, tmp_path_factory.mktemp("report") / "results")
    result = CliRunner().invoke(
        app, ["report", str(directory), "--timeline-pods", "5", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    return directory, result.output


def test_report_writes_plots_and_page(reported: tuple[Path, str]) -> None:
    directory, output = reported
    page = directory / "report.html"

    assert f"report: {page}" in output
    names = sorted(p.name for p in (directory / "plots").iterdir())
    assert names == sorted(f"{name}.png" for name, _ in plots.PLOTS)
    leftovers = [p.name for p in directory.rglob(".*")]
    assert leftovers == []
    assert page.stat().st_mode & 0o044 == 0o044


def test_report_embeds_every_plot(reported: tuple[Path, str]) -> None:
    directory, _ = reported
    text = (directory / "report.html").read_text(encoding="utf-8")
    parser = ImageSources()
    parser.feed(text)

    assert len(parser.sources) == len(plots.PLOTS)
    for source, (name, _) in zip(parser.sources, plots.PLOTS, strict=True):
        assert source.startswith("data:image/png;base64,")
        embedded = base64.b64decode(source.split(",", 1)[1])
        assert embedded == (directory / "plots" / f"{name}.png").read_bytes()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "<td>scheduling_latency_s_p95</td>" in text
    assert "dra-sim report: mixed" in text


def test_report_notes_sampled_timeline(reported: tuple[Path, str]) -> None:
    directory, _ = reported
    text = (directory / "report.html").read_text(encoding="utf-8")

    assert "The timeline shows a random sample of 5 of 11 pods." in text


def test_cli_report_rejects_bad_directories(tmp_path: Path) -> None:
    runner = CliRunner()

    missing = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    not_results = runner.invoke(app, ["report", str(tmp_path)])

    assert missing.exit_code == 2
    assert "results directory not found" in missing.output
    assert not_results.exit_code == 2
    assert "not a results directory (missing scenario.resolved.yaml" in not_results.output


EMPTY_RUN = """
name: empty
horizon_s: 10
cluster:
  node_pools:
    - name: node
      count: 1
"""


def test_report_of_run_without_pods(run_scenario: Callable[..., Path]) -> None:
    directory = run_scenario(EMPTY_RUN)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = write_report(directory)

    assert "dra-sim report: empty" in page.read_text(encoding="utf-8")
    assert len(list((directory / "plots").glob("*.png"))) == len(plots.PLOTS)


def browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "headless Chromium is not installed here (Debian packages chromium and "
            "chromium-driver; .ci/run installs them)"
        )
    return browser, driver


def test_quickstart_report_renders_in_chromium(quickstart_dir: Path, tmp_path: Path) -> None:
    browser, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    directory = copy_results(quickstart_dir, tmp_path / "results")
    page = write_report(directory)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.resolve().as_uri())
        state = driver.execute_script("return document.readyState")
        title = driver.title
        widths = driver.execute_script(
            "return Array.from(document.images).map(img => img.complete ? img.naturalWidth : 0)"
        )
        screenshot = driver.get_screenshot_as_png()
    finally:
        driver.quit()

    assert state == "complete"
    assert title == "dra-sim report: quickstart"
    assert len(widths) == len(plots.PLOTS)
    assert all(width > 0 for width in widths), widths
    pixels = imread(io.BytesIO(screenshot))
    assert pixels.shape[0] > 100
    assert float(np.var(pixels[..., :3])) > 1e-3
