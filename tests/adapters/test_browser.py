"""The pages in a real headless browser: Debian's chromium driven by Playwright.

The app is served by uvicorn on a free loopback port; the browser runs with JavaScript turned
off, so each step also shows the pages work without it. Without /usr/bin/chromium (or the
playwright package) these tests skip and say so; `.ci/run` installs chromium, so CI runs them.

The patient page's screenshot for the README (docs/patient-page.png) is written by this test
run when it is missing, or always with ONCOLEDGER_UPDATE_SCREENSHOT=1 (`make screenshot`).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "patient-page.png"
CASE = "CR-ESCC-001"

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no browser: {CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip: playwright)"
)


class Server:
    def __init__(self, config: StoreConfig) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(config), host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, OncoLedger]]:
    config = StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("browser") / "ledger.db"))
    with OncoLedger(config) as ledger:
        ledger.record_demo(actor="test")
        with Server(config) as server:
            yield server, ledger


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    yield context.new_page()
    context.close()


def sign_in(page: Any, server: Server, token: str, start: str = "/patients") -> None:
    page.goto(server.url + start)
    assert page.locator("h1").inner_text() == "Sign in"
    page.fill("#token", token)
    page.click("form.login button[type=submit]")


def test_reader_signs_in_filters_the_cohort_and_opens_a_patient(
    site: tuple[Server, OncoLedger], page: Any
) -> None:
    server, ledger = site
    sign_in(page, server, ledger.tokens.create("dr.reader", "reader"))
    # The cohort page, every demo patient listed.
    assert page.locator("h1").inner_text() == "Patients"
    links = page.locator("table.cohort tbody td:first-child a")
    assert links.all_inner_texts() == ["CR-ESCC-001", "DEMO-EAC-002", "DEMO-ESCC-003"]
    # Filter: stage group IVB and discordant, with the page's own form (no script needed).
    page.select_option("select[name=stage_group]", "IVB")
    page.select_option("select[name=concordance]", "discordant")
    page.click("form.filters button[type=submit]")
    assert "stage_group=IVB" in page.url and "concordance=discordant" in page.url
    assert links.all_inner_texts() == [CASE]
    assert page.locator("p.count").inner_text() == "1 patient match."
    # Open the patient.
    links.first.click()
    assert page.url == f"{server.url}/patients/{CASE}"
    assert page.locator("h1").inner_text() == CASE
    # The figure: drawn inline, visible, its caption readable as text.
    figure = page.locator("figure.chart svg")
    assert figure.is_visible()
    box = figure.bounding_box()
    assert box["width"] > 400 and box["height"] > 500
    assert "CTC count decreasing (4 → 0 per 7.5 mL) while clinical stage unchanged" in " ".join(
        figure.locator("#caption text").all_text_contents()
    )
    assert figure.locator("#ctc-draw-1 text").all_text_contents() == ["4", "2016-08-30"]
    # The timeline: 27 events in clinical order, each in its lane.
    timeline = page.locator("#timeline tbody tr")
    assert timeline.count() == 27
    assert timeline.first.locator("td.date").inner_text() == "2016-04-26"
    death = timeline.last
    assert "Death" in death.locator("td").nth(6).inner_text()  # the Follow-up lane
    assert page.locator("#stage-assessments tbody tr").count() == 4
    assert page.locator(".summary").inner_text().count("IVB") >= 2
    if os.environ.get("ONCOLEDGER_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shot = SCREENSHOT.with_suffix(".tmp.png")
        page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280, "height": 900})
        shutil.move(shot, SCREENSHOT)


def test_amended_and_retracted_events_are_visible_as_such(
    site: tuple[Server, OncoLedger], page: Any
) -> None:
    server, ledger = site
    sign_in(page, server, ledger.tokens.create("dr.second", "reader"), "/patients/DEMO-EAC-002")
    assert page.url == f"{server.url}/patients/DEMO-EAC-002"  # back where the reader started
    retracted = page.locator("#timeline tr.retracted")
    assert retracted.count() == 1
    assert retracted.locator("del").count() == 1
    assert "another patient" in retracted.inner_text()
    assert page.locator("#timeline tr.amended .tag").all_inner_texts() == ["amended"]


def test_a_revoked_token_gets_the_sign_in_page(site: tuple[Server, OncoLedger], page: Any) -> None:
    server, ledger = site
    sign_in(page, server, ledger.tokens.create("nurse.gone", "reader"))
    assert page.locator("h1").inner_text() == "Patients"
    ledger.tokens.revoke("nurse.gone")
    page.goto(f"{server.url}/patients/{CASE}")
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.url.startswith(f"{server.url}/login?next=")


def test_sign_out_and_error_pages(site: tuple[Server, OncoLedger], page: Any) -> None:
    server, ledger = site
    sign_in(page, server, ledger.tokens.create("dr.third", "reader"))
    response = page.goto(f"{server.url}/patients/NO-SUCH")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert page.locator(".error").inner_text() == "patient NO-SUCH is not registered"
    page.click("header form button[type=submit]")  # Sign out
    assert page.locator("h1").inner_text() == "Sign in"
    page.goto(f"{server.url}/patients")
    assert page.locator("h1").inner_text() == "Sign in"
