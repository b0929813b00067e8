"""Acceptance: the web client registers a source through its form and shows its changes live, in a real browser.

Also: it resumes without a reload after the server restarts, and a 10,000-row tab does not freeze the page.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ServerProcess, wait_for, write_tabs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 20_000


def _source_id(server: ServerProcess, name: str) -> str:
    items = httpx.get(server.http + "/v1/sources", timeout=10).json()["items"]
    return next(s["id"] for s in items if s["name"] == name)


def _commit(server: ServerProcess, source: str, path: Path, tabs: list[dict[str, Any]]) -> int:
    """Write the file, ask for a read, and wait for the new version; return it."""
    before = server.source(source)["version"]
    write_tabs(path, tabs)
    server.refresh(source)
    wait_for(lambda: server.source(source)["version"] > before, what="the change to be committed")
    return int(server.source(source)["version"])


def _data_rows(page: Any) -> list[list[str]]:
    """The grid's body rows as cell texts, without rows that are animating out."""
    texts = page.locator("#grid tbody tr:not(.row-out)").all_inner_texts()
    return [text.split("\t") for text in texts]


def test_register_through_the_form_then_see_edits_live_and_resume_after_a_restart(
    browser: Any, tmp_path: Path
) -> None:
    path = tmp_path / "book.json"
    tabs: list[dict[str, Any]] = [
        {"id": 0, "title": "Prices", "rows": [["sku", "price"], ["A-1", "10"], ["B-2", "20"], ["C-3", "30"]]},
        {"id": 5, "title": "Notes", "rows": [["note"], ["hello"]]},
    ]
    write_tabs(path, tabs)
    server = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(server.http + "/")
        page.get_by_text("No sources yet").wait_for(timeout=TIMEOUT_MS)

        # A bad registration is refused with the server's message, and nothing is registered.
        page.select_option("#kind", "http_csv")
        page.fill("#location", "not a url")
        page.click("#add")
        page.locator("#form-error").filter(has_text="url").wait_for(timeout=TIMEOUT_MS)
        assert httpx.get(server.http + "/v1/sources", timeout=10).json()["items"] == []

        page.select_option("#kind", "file")
        page.fill("#location", str(path))
        page.fill("#name", "prices")
        page.fill("#key-column", "sku")
        page.click("#add")
        page.locator("#status[data-state='live']").wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("cell", name="B-2").wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#sources button.pick[aria-current='true']").inner_text().startswith("prices")
        source = _source_id(server, "prices")
        assert server.source(source)["config"]["key_column"] == "sku"

        # A cell change flashes.
        tabs[0]["rows"][2][1] = "25"
        _commit(server, source, path, tabs)
        page.locator("#grid td.flash", has_text="25").wait_for(timeout=TIMEOUT_MS)
        assert page.get_by_role("cell", name="20", exact=True).count() == 0

        # A row inserted in the middle animates in, in its place.
        tabs[0]["rows"].insert(2, ["A-9", "15"])
        _commit(server, source, path, tabs)
        page.locator("#grid tr.row-in", has_text="A-9").wait_for(timeout=TIMEOUT_MS)
        assert [r[0] for r in _data_rows(page)] == ["A-1", "A-9", "B-2", "C-3"]

        # A renamed tab keeps its place and its id.
        tabs[1]["title"] = "Remarks"
        _commit(server, source, path, tabs)
        page.get_by_role("tab", name="Remarks").wait_for(timeout=TIMEOUT_MS)
        assert page.get_by_role("tab").all_inner_texts() == ["Prices", "Remarks"]
        assert page.get_by_role("tab", name="Remarks").get_attribute("data-tab-id") == "5"

        shot = tmp_path / "web-client.png"
        page.screenshot(path=str(shot), full_page=True, animations="disabled")
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000

        # The server restarts on the same port and database: the page resumes with no reload and no gap.
        page.evaluate("() => { window.notReloaded = true; }")
        server.stop()
        page.locator("#status[data-state='reconnecting']").wait_for(timeout=TIMEOUT_MS)
        server.start()
        page.locator("#status[data-state='resumed']").wait_for(timeout=TIMEOUT_MS)
        del tabs[0]["rows"][1]
        tabs[0]["rows"][-1][1] = "35"
        _commit(server, source, path, tabs)
        page.locator("#grid td.flash", has_text="35").wait_for(timeout=TIMEOUT_MS)
        wait_for(
            lambda: [r[0] for r in _data_rows(page)] == ["A-9", "B-2", "C-3"], what="the deleted row to leave"
        )
        assert page.evaluate("() => window.notReloaded") is True
        shown = page.evaluate("() => window.sheetstream.state.tabs")
        snapshot = httpx.get(f"{server.http}/v1/sources/{source}/snapshot", timeout=10).json()
        assert shown == snapshot["tabs"]
    finally:
        server.stop()


def test_a_10000_row_tab_renders_only_the_rows_in_view_and_the_page_stays_responsive(
    browser: Any, tmp_path: Path
) -> None:
    path = tmp_path / "big.json"
    rows = [
        ["id", "name", "qty", "note"],
        *([f"r{i}", f"name {i}", str(i), "x" * (i % 13)] for i in range(1, 10_001)),
    ]
    tabs: list[dict[str, Any]] = [{"id": 0, "title": "Big", "rows": rows}]
    path.write_text(json.dumps({"tabs": tabs}))
    server = ServerProcess(tmp_path).start()
    try:
        source = server.add_source("file", {"path": str(path)}, name="big", poll_interval_s=60)["id"]
        server.refresh(source)
        wait_for(lambda: server.source(source)["version"] >= 1, what="the first read")

        page = browser.new_page(viewport={"width": 1200, "height": 800})
        started = time.monotonic()
        page.goto(f"{server.http}/?source={source}")
        page.get_by_role("cell", name="r1", exact=True).wait_for(timeout=TIMEOUT_MS)
        shown_after_s = time.monotonic() - started
        print(f"10,000 rows: first rows shown {shown_after_s:.2f} s after navigation")

        def round_trip_s() -> float:
            begin = time.monotonic()
            page.evaluate("() => 1 + 1")
            return time.monotonic() - begin

        rendered = page.locator("#grid tr").count()
        assert 10 < rendered < 200, f"{rendered} rows in the DOM: not virtual"
        assert round_trip_s() < 1.0

        # Scrolling to the middle builds the rows there, and only those.
        page.evaluate(
            "() => { const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight / 2; }"
        )
        page.get_by_role("cell", name="r5000", exact=True).wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#grid tr").count() < 200
        assert page.get_by_role("cell", name="r1", exact=True).count() == 0
        assert page.get_by_role("columnheader", name="name", exact=True).is_visible(), (
            "the header row stays in view"
        )

        # A change far down the sheet arrives while scrolled elsewhere, and the page answers promptly meanwhile.
        rows[9_000][1] = "changed"
        _commit(server, source, path, tabs)
        wait_for(
            lambda: page.evaluate("() => window.sheetstream.state.tabs[0].rows[9000][1]") == "changed",
            what="the change to reach the page",
        )
        assert round_trip_s() < 1.0
        page.evaluate("() => { document.getElementById('viewport').scrollTop = 1e9; }")
        page.get_by_role("cell", name="r10000", exact=True).wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#grid tr").count() < 200
    finally:
        server.stop()


def test_a_server_with_credentials_is_followed_with_a_key_and_a_token_from_the_page_address(
    browser: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import jwt

    secret = "a-connection-token-secret-of-32-bytes!"
    db = tmp_path / "sheetstream.db"
    made = subprocess.run(
        [sys.executable, "-m", "sheetstream", "keys", "create", "--name", "web", "--scope", "read",
         "--scope", "write", "--store", f"sqlite:///{db}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = made.stdout.strip()
    token = jwt.encode({"sources": ["*"], "exp": int(time.time()) + 3600}, secret, algorithm="HS256")
    path = tmp_path / "book.json"
    tabs: list[dict[str, Any]] = [{"id": 0, "title": "Prices", "rows": [["sku", "price"], ["A-1", "10"]]}]
    write_tabs(path, tabs)
    server = ServerProcess(tmp_path, "--no-anonymous", "--jwt-secret", secret).start()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        created = httpx.post(
            server.http + "/v1/sources", json={"kind": "file", "config": {"path": str(path)}}, headers=auth, timeout=10
        )
        assert created.status_code == 201, created.text
        source = created.json()["id"]

        # Without credentials the page says what it needs, and shows nothing.
        bare = browser.new_page()
        bare.goto(server.http + "/")
        bare.locator("#status[data-state='error']").wait_for(timeout=TIMEOUT_MS)
        assert "#key=" in bare.locator("#log").inner_text()
        bare.close()

        page = browser.new_page()
        page.goto(f"{server.http}/#key={key}&token={token}")
        page.locator("#status[data-state='live']").wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("cell", name="A-1").wait_for(timeout=TIMEOUT_MS)
        assert key not in page.url and token not in page.url  # taken out of the address bar

        tabs[0]["rows"][1][1] = "15"
        write_tabs(path, tabs)
        assert httpx.post(f"{server.http}/v1/sources/{source}/refresh", headers=auth, timeout=10).status_code == 202
        page.locator("#grid td.flash", has_text="15").wait_for(timeout=TIMEOUT_MS)
        page.reload()  # the credentials stay with the tab
        page.locator("#status[data-state='live']").wait_for(timeout=TIMEOUT_MS)
    finally:
        server.stop()


def test_sources_are_paused_resumed_and_removed_from_the_page(browser: Any, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        ids = {}
        for name in ("first", "second"):
            path = tmp_path / f"{name}.json"
            write_tabs(path, [{"id": 0, "title": "T", "rows": [["k"], [name]]}])
            ids[name] = server.add_source("file", {"path": str(path)}, name=name)["id"]
        page = browser.new_page()
        page.goto(f"{server.http}/?source={ids['first']}")
        page.locator("#status[data-state='live']").wait_for(timeout=TIMEOUT_MS)
        first = page.locator("#sources li", has_text="first")

        first.locator("button[data-action='pause']").click()
        wait_for(lambda: server.source(ids["first"])["paused"] is True, what="the pause to reach the server")
        first.locator(".meta", has_text="paused").wait_for(timeout=TIMEOUT_MS)
        first.locator("button[data-action='pause']").click()  # now "resume"
        wait_for(lambda: server.source(ids["first"])["paused"] is False, what="the resume to reach the server")

        page.once("dialog", lambda dialog: dialog.dismiss())  # changed one's mind: nothing happens
        first.locator("button[data-action='remove']").click()
        page.once("dialog", lambda dialog: dialog.accept())
        first.locator("button[data-action='remove']").click()
        wait_for(
            lambda: [s["name"] for s in httpx.get(server.http + "/v1/sources", timeout=10).json()["items"]]
            == ["second"],
            what="the removal to reach the server",
        )
        page.locator("#sources li", has_text="first").wait_for(state="detached", timeout=TIMEOUT_MS)
        # The page follows what is left.
        page.get_by_role("cell", name="second").wait_for(timeout=TIMEOUT_MS)
    finally:
        server.stop()
