"""The browser pages over HTTP (Litestar's TestClient): sign-in, sessions, CSRF, pages, errors.

What a real browser does with them (rendering, forms, links) is in test_browser.py; here each
rule of the sign-in and each page's content is checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

import domain.ledger.web_sessions
from api.app import create_app
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

CASE = "CR-ESCC-001"


class Browser:
    """A TestClient used like a browser: cookies kept, redirects looked at one by one."""

    def __init__(self, client: TestClient[Litestar]) -> None:
        self.client = client

    @property
    def ledger(self) -> OncoLedger:
        ledger: OncoLedger = self.client.app.state.ledger
        return ledger

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.client.get(url, follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def sign_in(self, token: str, next_page: str = "/patients") -> httpx.Response:
        """What the sign-in form posts, as a browser sends it from this server's page."""
        form = self.get(f"/login?next={next_page}")
        assert form.status_code == 200
        return self.client.post(
            "/login",
            data={"token": token, "next": next_page},
            headers={"Origin": "http://testserver.local", "Sec-Fetch-Site": "same-origin"},
            follow_redirects=False,
        )


@pytest.fixture
def browser(store: StoreConfig) -> Iterator[Browser]:
    with TestClient(create_app(store)) as client:
        ledger: OncoLedger = client.app.state.ledger
        ledger.record_demo(actor="test")
        yield Browser(client)


@pytest.fixture
def reader(browser: Browser) -> str:
    return browser.ledger.tokens.create("reader-1", "reader")


def error_text(html: str) -> str:
    match = re.search(r'class="error"[^>]*>([^<]*)<', html)
    assert match, html[:500]
    return unescape(match.group(1))


def rows(html: str) -> list[str]:
    """The patient ids the cohort page links to, in order."""
    return re.findall(r'<td><a href="/patients/([^"]+)">', html)


# -- sign-in -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/patients", f"/patients/{CASE}", f"/patients/{CASE}/chart.svg"])
def test_without_a_session_pages_send_to_the_sign_in_form(browser: Browser, url: str) -> None:
    response = browser.get(url)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={url.replace('/', '%2F')}"
    form = browser.get(response.headers["location"])
    assert form.status_code == 200 and "<h1>Sign in</h1>" in form.text
    assert f'name="next" value="{url}"' in form.text


def test_a_bearer_token_alone_does_not_open_a_page(browser: Browser, reader: str) -> None:
    response = browser.get("/patients", headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_sign_in_sets_a_strict_httponly_session_cookie(browser: Browser, reader: str) -> None:
    response = browser.sign_in(reader, f"/patients/{CASE}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/patients/{CASE}"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "oncoledger_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert reader not in cookie and len(value) >= 40
    # Server side: only a hash of the cookie, tied to the token's key id; never the token.
    with browser.ledger.web_sessions.db.transaction() as cur:
        cur.execute("SELECT session_hash, key_id FROM ol_web_sessions")
        stored = cur.fetchall()
    assert len(stored) == 1
    assert value not in str(stored) and reader not in str(stored)
    assert stored[0][1] == reader.split("_")[1]
    page = browser.get(f"/patients/{CASE}")
    assert page.status_code == 200 and "Signed in as <b>reader-1</b> (reader)" in page.text


@pytest.mark.parametrize("role", ["reader", "clinician", "auditor", "admin"])
def test_every_role_can_read_the_pages(browser: Browser, role: str) -> None:
    token = browser.ledger.tokens.create(f"{role}-9", role)
    assert browser.sign_in(token).status_code == 303
    assert browser.get("/patients").status_code == 200


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("olk_000000000000_" + "A" * 43, 401, "Unknown or revoked token"),
        ("not a token", 401, "Unknown or revoked token"),
        ("   ", 400, "Paste your API token"),
    ],
)
def test_a_bad_token_gets_the_form_again(
    browser: Browser, token: str, status: int, message: str
) -> None:
    response = browser.sign_in(token)
    assert response.status_code == status
    assert message in error_text(response.text)
    assert "oncoledger_session=" not in str(response.headers.get_list("set-cookie"))
    assert browser.get("/patients").status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver.local"},
        {"Referer": "https://evil.example/testserver.local/"},
    ],
)
def test_sign_in_refuses_a_form_posted_from_elsewhere(
    browser: Browser, reader: str, headers: dict[str, str]
) -> None:
    forged = browser.client.post(
        "/login", data={"token": reader, "next": "/patients"}, headers=headers
    )
    assert forged.status_code == 403
    assert "did not come from this server" in error_text(forged.text)
    assert "oncoledger_session=" not in str(forged.headers.get_list("set-cookie"))
    assert browser.get("/patients").status_code == 303


def test_sign_in_from_a_client_without_browser_headers(browser: Browser, reader: str) -> None:
    """No Origin, Referer or Sec-Fetch-Site: not a browser carrying someone's cookie."""
    response = browser.client.post(
        "/login", data={"token": reader, "next": f"/patients/{CASE}"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == f"/patients/{CASE}"
    assert browser.get(f"/patients/{CASE}").status_code == 200


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "/schema", "javascript:x"]
)
def test_sign_in_only_returns_to_our_own_pages(browser: Browser, reader: str, target: str) -> None:
    response = browser.sign_in(reader, target)
    assert response.status_code == 303 and response.headers["location"] == "/patients"


def test_a_revoked_token_ends_its_sessions_at_the_next_request(browser: Browser) -> None:
    token = browser.ledger.tokens.create("nurse-b", "reader")
    browser.sign_in(token)
    assert browser.get("/patients").status_code == 200
    browser.ledger.tokens.revoke("nurse-b")
    response = browser.get(f"/patients/{CASE}")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with browser.ledger.web_sessions.db.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM ol_web_sessions")
        assert cur.fetchone()[0] == 0  # the session is gone, not just refused


def test_a_session_ends_after_its_lifetime(
    browser: Browser, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain.ledger.web_sessions, "LIFETIME", timedelta(seconds=-1))
    assert browser.sign_in(reader).status_code == 303
    assert browser.get("/patients").status_code == 303


def test_sign_out_refuses_other_sites_then_ends_the_session(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    forged = browser.client.post(
        "/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert browser.get("/patients").status_code == 200  # still signed in
    done = browser.client.post(
        "/logout",
        headers={"Origin": "http://testserver.local", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert "oncoledger_session=" in str(done.headers.get_list("set-cookie"))
    assert browser.get("/patients").status_code == 303
    with browser.ledger.web_sessions.db.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM ol_web_sessions")
        assert cur.fetchone()[0] == 0


def test_the_api_never_accepts_the_page_cookie(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    response = browser.get(f"/api/v1/patients/{CASE}/stage")
    assert response.status_code == 401


# -- the cohort page ----------------------------------------------------------------------------


def test_cohort_page_lists_every_patient_with_a_link(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    page = browser.get("/patients")
    assert page.status_code == 200
    assert rows(page.text) == ["CR-ESCC-001", "DEMO-EAC-002", "DEMO-ESCC-003"]
    assert "3 patients match." in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("stage_group=IVB", ["CR-ESCC-001", "DEMO-EAC-002"]),
        ("concordance=discordant", ["CR-ESCC-001"]),
        ("survival_status=alive", ["DEMO-ESCC-003"]),
        ("ctc_trend=decreasing&sort=-patient_id", ["DEMO-ESCC-003", "CR-ESCC-001"]),
        ("stage_group=IVB&stage_group=II", ["CR-ESCC-001", "DEMO-EAC-002", "DEMO-ESCC-003"]),
        ("histology=adenocarcinoma", ["DEMO-EAC-002"]),
        ("stage_group=&sex=", ["CR-ESCC-001", "DEMO-EAC-002", "DEMO-ESCC-003"]),
        ("os_months_min=20", ["CR-ESCC-001", "DEMO-ESCC-003"]),
        ("os_months_min=5&os_months_max=12", ["DEMO-EAC-002"]),
        ("ctc_latest_per_7_5_ml_min=1", ["DEMO-EAC-002"]),
        ("birth_year_min=1960&birth_year_max=1970", ["DEMO-ESCC-003"]),
    ],
)
def test_cohort_filters(browser: Browser, reader: str, query: str, expected: list[str]) -> None:
    browser.sign_in(reader)
    page = browser.get(f"/patients?{query}")
    assert page.status_code == 200
    assert rows(page.text) == expected


def test_cohort_pages_with_a_cursor(
    browser: Browser, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.pages

    monkeypatch.setattr(api.pages, "PAGE_SIZE", 2)
    browser.sign_in(reader)
    first = browser.get("/patients?stage_group=IVB&stage_group=II")
    assert rows(first.text) == ["CR-ESCC-001", "DEMO-EAC-002"]
    next_url = unescape(re.search(r'href="([^"]+)" rel="next"', first.text).group(1))  # type: ignore[union-attr]
    second = browser.get(next_url)
    assert rows(second.text) == ["DEMO-ESCC-003"]
    assert 'rel="next"' not in second.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("stage_group=V", "Stage group 'V' is not one of 0, I, IA, IB, IC, II"),
        ("sort=favourite", "`sort` must be one of"),
        ("cursor=%%%", "cursor"),
        ("ctc_trend=down", "CTC trend 'down' is not one of"),
        ("os_months_min=lots", "OS months from 'lots' is not a number"),
        ("birth_year_max=1960.5", "Born to '1960.5' is not a number"),
        ("os_months_max=nan", "`os_months_max` is out of range"),
    ],
)
def test_cohort_bad_filters_get_an_error_page(
    browser: Browser, reader: str, query: str, message: str
) -> None:
    browser.sign_in(reader)
    page = browser.get(f"/patients?{query}")
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert message in error_text(page.text)
    assert "Traceback" not in page.text


# -- the patient page ---------------------------------------------------------------------------


def test_patient_page_shows_summary_figure_timeline_and_tables(
    browser: Browser, reader: str
) -> None:
    browser.sign_in(reader)
    page = browser.get(f"/patients/{CASE}")
    assert page.status_code == 200
    html = page.text
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    text = " ".join(text.split())
    # Summary: stage now and at diagnosis, CTC and concordance, response, survival.
    assert "Stage now IVB cT4N2M1 (2017-10-10)" in text
    assert "Stage at diagnosis IVB cT4N2M1 (2016-05-31)" in text
    assert "latest 0 per 7.5 mL, decreasing, cleared" in text
    assert (
        "discordant CTC count decreasing (4 → 0 per 7.5 mL) while clinical stage unchanged (IVB)"
        in text
    )
    assert "dead, 2 years 3 months (27.2 months)" in text
    assert "Response (RECIST 1.1) SD" in text
    # The figure inline, as SVG with its text.
    assert html.count("<svg") == 1 and 'id="ctc-draw-1"' in html
    # The timeline: one row per event, in clinical order.
    timeline = html[
        html.index('id="timeline"') : html.index("</table>", html.index('id="timeline"'))
    ]
    assert timeline.count("<tr class=") == 27
    dates = re.findall(r'<td class="date">(\d{4}(?:-\d{2}){0,2})', timeline)
    assert dates[0] == "2016-04-26" and dates[-1] == "2018-08" and len(dates) == 27
    # Tables.
    draws = html[html.index('id="ctc-draws"') :]
    assert re.search(r"<td>2016-08-30</td><td class=\"num\">4</td>", draws)
    assert re.search(r"<td>2017-10-10</td><td class=\"num\">0</td>", draws)
    assert html[html.index('id="stage-assessments"') :].count("<td>cT4N2M1</td>") == 4
    lesions = html[html.index('id="lesions"') : html.index("</table>", html.index('id="lesions"'))]
    # The liver metastasis at each of its four ultrasounds (case report), ablated in 2016-10.
    times = " \N{MULTIPLICATION SIGN} "
    assert re.findall(rf'<td class="num">([\d.{times}]+)</td>', lesions) == [
        times.join(dims)
        for dims in (("38", "35", "26"), ("38", "35", "26"), ("36", "31", "20"), ("32", "27", "19"))
    ]
    assert lesions.count("<td>liver-1</td>") == 4
    assert "Download the figure" in html and f"/patients/{CASE}/chart.pdf" in html


def test_patient_page_shows_amended_and_retracted_events(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    html = browser.get("/patients/DEMO-EAC-002").text
    retracted = re.search(r'<tr class="retracted"[^>]*>(.*?)</tr>', html, re.S)
    assert retracted and "<del>" in retracted.group(1)
    assert "this CT report belongs to another patient" in unescape(retracted.group(1))
    amended = re.search(r'<tr class="amended"[^>]*>(.*?)</tr>', html, re.S)
    assert amended and "CTC 3 per 7.5 mL (4 in 10 mL)" in amended.group(1)
    assert 'class="tag amended">amended' in amended.group(1)


def test_patient_page_rule_and_as_of(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    html = browser.get(f"/patients/{CASE}?rule=ge3").text
    assert "positive ≥ 3 (ge3)" in html and '<th scope="col">Positive (ge3)</th>' in html
    assert f'href="/patients/{CASE}/chart.png?rule=ge3"' in html
    before = browser.get(f"/patients/{CASE}?as_of=2000-01-01T00:00:00Z").text
    assert "As known at 2000-01-01T00:00:00+00:00" in before
    assert "No CTC draws recorded." in before


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/patients/NOPE", 404, "patient NOPE is not registered"),
        ("/patients/bad%20id", 400, "patient_id"),
        (f"/patients/{CASE}?rule=ge2", 400, "'ge2' is not a CTC positivity rule"),
        (f"/patients/{CASE}?as_of=soon", 400, "`as_of` 'soon' is not an ISO 8601 timestamp"),
        ("/patients/NOPE/chart.svg", 404, "patient NOPE is not registered"),
    ],
)
def test_patient_page_errors_are_pages(
    browser: Browser, reader: str, url: str, status: int, message: str
) -> None:
    browser.sign_in(reader)
    page = browser.get(url)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert message in error_text(page.text)
    assert "Traceback" not in page.text


def test_page_values_are_escaped(browser: Browser, reader: str) -> None:
    ledger = browser.ledger
    ledger.register(
        "P-X",
        {"sex": "male", "occurred": "2020-01-01", "primary_site": "<script>alert(1)</script>"},
        actor="t",
        source="cli",
    )
    ledger.append(
        "P-X",
        [
            {
                "type": "surgery",
                "occurred": "2020-02-01",
                "procedure": "<img src=x onerror=alert(1)>",
                "intent": "palliative",
            }
        ],
        actor="t",
        source="cli",
    )
    browser.sign_in(reader)
    for url in ("/patients/P-X", "/patients?sort=-events"):
        html = browser.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html
    html = browser.get("/patients/P-X").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pages_forbid_scripts_and_caching(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    page = browser.get(f"/patients/{CASE}")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    css = browser.get("/static/oncoledger.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # nothing fetched from elsewhere


def test_page_figure_downloads_under_the_cookie(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    png = browser.get(f"/patients/{CASE}/chart.png?rule=ge5")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    pdf = browser.get(f"/patients/{CASE}/chart.pdf")
    assert pdf.content.startswith(b"%PDF")


def test_every_page_view_is_an_access_log_entry(browser: Browser, reader: str) -> None:
    browser.sign_in(reader)
    browser.get("/patients")
    browser.get(f"/patients/{CASE}")
    browser.get(f"/patients/{CASE}/chart.svg")
    browser.get("/patients/NOPE")  # refused: nothing read, nothing logged
    entries = browser.ledger.access_log.query(None, "reader-1").entries
    assert [(e.channel, e.resource, e.patient_id) for e in entries] == [
        ("web", "patients", None),
        ("web", "patient-page", CASE),
        ("web", "chart", CASE),
    ]
    assert all(e.address for e in entries)
    assert browser.ledger.verify_access_log().ok


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", f"/patients/{CASE}/nothing-here", 404),
        ("DELETE", "/patients", 405),
        ("GET", "/logout", 405),
    ],
)
def test_unknown_page_paths_and_methods_get_error_pages(
    browser: Browser, method: str, url: str, status: int
) -> None:
    response = browser.client.request(method, url, follow_redirects=False)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>" in response.text and "Traceback" not in response.text
    api = browser.client.get("/api/v1/nothing-here")
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"
