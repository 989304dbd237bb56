"""The documentation site draws its Mermaid diagrams offline: Mermaid is vendored and loaded by
every page, so Material for MkDocs never fetches it from its CDN. Checked in Chromium on a small
site built with the same theme settings, with every request off this machine refused."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from make_us_rich.testing import missing_tool

REPO = Path(__file__).resolve().parents[2]
VENDORED = "assets/vendor/mermaid.min.js"


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)
    return yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)


def test_mermaid_is_vendored_with_its_licence_and_loaded_by_every_page():
    config = _config()
    assert VENDORED in config["extra_javascript"]
    script = (REPO / "docs" / VENDORED).read_text()
    assert 'globalThis["mermaid"]' in script  # what Material looks for before using its CDN
    assert "MIT" in (REPO / "docs" / "assets" / "vendor" / "LICENSE-mermaid").read_text()
    assert config["theme"]["font"] is False  # no font CDN either


@pytest.mark.slow
def test_a_diagram_draws_with_no_network(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        missing_tool("chromium is not installed: `make browser-tools`")
    playwright = pytest.importorskip("playwright.sync_api")
    config = _config()
    docs = tmp_path / "docs"
    (docs / "assets" / "vendor").mkdir(parents=True)
    shutil.copy(REPO / "docs" / VENDORED, docs / VENDORED)
    (docs / "index.md").write_text("# Loop\n\n```mermaid\nflowchart LR\n  A[fetch] --> B[train]\n```\n")
    site = {"site_name": "t", "theme": config["theme"], "extra_javascript": [VENDORED],
            "markdown_extensions": [{"pymdownx.superfences": {"custom_fences": [
                {"name": "mermaid", "class": "mermaid",
                 "format": "!!python/name:pymdownx.superfences.fence_code_format"}]}}]}
    text = yaml.safe_dump(site).replace("'!!python/name:pymdownx.superfences.fence_code_format'",
                                        "!!python/name:pymdownx.superfences.fence_code_format")
    (tmp_path / "mkdocs.yml").write_text(text)
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "-d", str(tmp_path / "site")],
                   cwd=tmp_path, check=True, capture_output=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                       "PATH": "/usr/bin:/bin"})

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path / "site"), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refused: list[str] = []
    boxes: list = []

    def draw() -> None:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            local = f"http://127.0.0.1:{server.server_port}/"
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
                       else (refused.append(route.request.url), route.abort()))
            page.goto(local, wait_until="networkidle")
            diagram = page.locator(".mermaid")
            page.wait_for_function("() => document.querySelector('.mermaid')?.textContent.trim() === ''",
                                   timeout=20_000)  # the source text is replaced by the drawing
            boxes.append(diagram.bounding_box())
            browser.close()

    # in a thread of its own: the browser tests' session-wide Playwright may hold this worker's
    # main thread, where a second sync Playwright refuses to start
    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(draw, errors))
    try:
        worker.start()
        worker.join(120)
    finally:
        server.shutdown()
    if errors:
        raise errors[0]
    assert boxes, "the page did not draw within 120 s"
    box = boxes[0]
    assert box is not None and box["height"] > 20
    assert not [u for u in refused if "mermaid" in u], refused


def _capture(fn, errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # handed to the test's thread
        errors.append(exc)
