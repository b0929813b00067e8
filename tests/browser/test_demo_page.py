"""Acceptance: `serve --demo` shows the demo CSV in a real browser, and an edit to the file appears live."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, write_atomically

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (make test installs it)"
        if __import__("os").environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


def test_demo_page_shows_live_edits_of_the_demo_csv(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "people.csv"
    shutil.copy(REPO / "demo" / "people.csv", csv)
    server = ServerProcess(tmp_path, "--demo", "--demo-csv", str(csv)).start()
    try:
        page = browser.new_page()
        page.goto(server.http + "/")
        page.get_by_role("cell", name="Ada Lovelace").wait_for(timeout=15_000)
        page.locator("#status[data-state='live']").wait_for(timeout=15_000)

        text = csv.read_text().replace("Ada Lovelace", "Ada King").replace("Grace Hopper,Compilers", "Grace Hopper,Navy")
        lines = text.splitlines()
        lines.insert(3, "9,Katherine Johnson,Orbits,Hampton,99")
        write_atomically(csv, "\n".join(lines) + "\n")

        page.get_by_role("cell", name="Ada King").wait_for(timeout=15_000)
        page.get_by_role("cell", name="Katherine Johnson").wait_for(timeout=15_000)
        rows = page.locator("#grid tr").all_inner_texts()
        assert [r.split("\t")[1] for r in rows[1:4]] == ["Ada King", "Grace Hopper", "Katherine Johnson"]
        assert page.locator("td.flash", has_text="Navy").count() == 1
        assert page.get_by_role("cell", name="Ada Lovelace").count() == 0
    finally:
        server.stop()
