"""The API contract as an integrator meets it: `/schema/openapi.json` is a valid OpenAPI
document, request bodies offer only what a client may send, every response header has a schema,
the docs UI at `/schema` loads offline, and a client generated from the document by
openapi-python-client registers a patient, appends an event and reads a view against a real
`oncoledger serve`.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar.testing import TestClient
from openapi_spec_validator import validate

from api.app import create_app
from domain.events import SERVER_FIELDS
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

CHROMIUM = "/usr/bin/chromium"
CLIENT_PACKAGE = "oncoledger_contract_client"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("db") / "ledger.db"))
    with TestClient(create_app(config)) as client:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


def _schemas_reached(document: dict[str, Any], node: Any) -> set[str]:
    """Names of the component schemas `node` refers to, transitively."""
    components = document["components"]["schemas"]
    seen: set[str] = set()
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    pending.append(components[name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return seen


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method.upper(), path, operation


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises, naming the first violation, if it is not


def test_request_bodies_do_not_offer_server_assigned_fields(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    with_bodies = 0
    for method, path, operation in _operations(document):
        if "requestBody" not in operation:
            continue
        with_bodies += 1
        for name in _schemas_reached(document, operation["requestBody"]):
            offered = set(components[name].get("properties", {})) & set(SERVER_FIELDS)
            assert not offered, f"{method} {path}: {name} offers {sorted(offered)}"
    assert with_bodies >= 5  # register, append, batch, amend, retract


def test_append_takes_create_bodies_and_history_shows_the_envelope(
    document: dict[str, Any],
) -> None:
    components = document["components"]["schemas"]
    append = document["paths"]["/api/v1/patients/{patient_id}/events"]["post"]
    sent = _schemas_reached(document, append["requestBody"])
    assert {"CtcCountCreate", "EventAmendedCreate", "EventRetractedCreate"} <= sent
    assert "CtcCount" not in sent
    assert "count" in components["CtcCountCreate"]["properties"]
    assert {"occurred", "count"} <= set(components["CtcCountCreate"]["required"])
    # An amendment's replacement is a request form too.
    amend = document["paths"]["/api/v1/patients/{patient_id}/events/{event_id}/amendments"]
    assert "CtcCountCreate" in _schemas_reached(document, amend["post"]["requestBody"])
    # What the server answers still carries what it assigned.
    history = document["paths"]["/api/v1/patients/{patient_id}/events"]["get"]
    read = _schemas_reached(document, history["responses"]["200"])
    assert "CtcCount" in read
    assert set(SERVER_FIELDS) <= set(components["CtcCount"]["properties"])


def test_every_response_header_has_a_schema(document: dict[str, Any]) -> None:
    headers_seen: set[str] = set()
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            for name, header in response.get("headers", {}).items():
                headers_seen.add(name)
                assert "schema" in header or "content" in header, (
                    f"{method} {path} {status}: header {name} has no schema"
                )
    assert {"ETag", "Idempotent-Replay", "Location", "Cache-Control"} <= headers_seen


def test_writes_document_idempotent_replay_and_reads_document_etag(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    for path in (
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}/events",
        "/api/v1/patients/{patient_id}/events/batch",
        "/api/v1/patients/{patient_id}/events/{event_id}/amendments",
        "/api/v1/patients/{patient_id}/events/{event_id}/retractions",
    ):
        assert "Idempotent-Replay" in paths[path]["post"]["responses"]["201"]["headers"], path
    for view in ("timeline", "stage", "ctc", "response", "survival"):
        get = paths[f"/api/v1/patients/{{patient_id}}/{view}"]["get"]
        assert get["operationId"] == f"get{view.capitalize()}"
        assert "ETag" in get["responses"]["200"]["headers"], view
    ctc_params = {
        p["name"] for p in paths["/api/v1/patients/{patient_id}/ctc"]["get"]["parameters"]
    }
    stage_params = {
        p["name"] for p in paths["/api/v1/patients/{patient_id}/stage"]["get"]["parameters"]
    }
    assert "rule" in ctc_params
    assert "rule" not in stage_params


def test_docs_ui_is_served_with_assets_from_the_app(tmp_path: Path) -> None:
    config = StoreConfig(sqlite_path=str(tmp_path / "ledger.db"))
    with TestClient(create_app(config)) as client:
        page = client.get("/schema")
        assert page.status_code == 200
        assert "http://" not in page.text and "https://" not in page.text, page.text
        for asset in (
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "swagger-ui.css",
            "favicon-32x32.png",
        ):
            assert f"/schema-assets/{asset}" in page.text
            served = client.get(f"/schema-assets/{asset}")
            assert served.status_code == 200, asset
            assert len(served.content) > 100, asset
        assert client.get("/schema-assets/LICENSE").status_code == 200


# -- a client generated from the document -----------------------------------------------------


@pytest.fixture(scope="module")
def generated_client(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    generator = shutil.which("openapi-python-client") or str(
        Path(sys.executable).with_name("openapi-python-client")
    )
    if not Path(generator).exists():
        pytest.skip("openapi-python-client is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("client")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(document))
    result = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(root / CLIENT_PACKAGE),
            "--meta",
            "none",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not (root / CLIENT_PACKAGE / "client.py").exists():
        raise AssertionError(f"the generator refused the document:\n{result.stdout}{result.stderr}")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


@pytest.fixture
def integrator(
    generated_client: ModuleType,
    sqlite_store: StoreConfig,
    serve_process: Callable[[StoreConfig], str],
) -> Iterator[Any]:
    """The generated client, authenticated as a clinician, on a real `oncoledger serve`."""
    with OncoLedger(sqlite_store) as ledger:
        token = ledger.tokens.create("integrator", "clinician")
    url = serve_process(sqlite_store)
    with generated_client.AuthenticatedClient(base_url=url, token=token) as client:
        yield client


def test_a_generated_client_registers_appends_amends_and_reads_a_view(
    generated_client: ModuleType, integrator: Any
) -> None:
    models = _module(generated_client, "models")
    register = _module(generated_client, "api.patients.register_patient")
    append = _module(generated_client, "api.events.append_event")
    amend = _module(generated_client, "api.events.amend_event")
    get_ctc = _module(generated_client, "api.projections.get_ctc")
    get_history = _module(generated_client, "api.events.get_history")

    registered = register.sync_detailed(
        client=integrator,
        body=models.PatientCreate(
            patient_id="GEN-1", occurred="2016-05", sex=models.PatientCreateSex.MALE
        ),
    )
    assert registered.status_code == 201, registered.content
    assert registered.parsed.version == 1
    assert registered.headers["Idempotent-Replay"] == "false"

    draw = models.CtcCountCreate(type_="ctc_count", occurred="2016-08-30", count=4)
    appended = append.sync_detailed("GEN-1", client=integrator, body=draw)
    assert appended.status_code == 201, appended.content
    assert appended.parsed.version == 2
    assert len(appended.parsed.hash_) == 64

    ctc = get_ctc.sync_detailed("GEN-1", client=integrator)
    assert ctc.status_code == 200, ctc.content
    assert ctc.headers["ETag"] == '"2"'
    assert [(d.occurred, d.count, d.positive) for d in ctc.parsed.draws] == [
        ("2016-08-30", 4, True)
    ]

    corrected = amend.sync_detailed(
        "GEN-1",
        appended.parsed.event_id,
        client=integrator,
        body=models.AmendmentCreate(
            reason="transcription error",
            replacement=models.CtcCountCreate(type_="ctc_count", occurred="2016-08-30", count=0),
        ),
    )
    assert corrected.status_code == 201, corrected.content
    ctc = get_ctc.sync_detailed("GEN-1", client=integrator)
    assert [(d.count, d.positive) for d in ctc.parsed.draws] == [(0, False)]

    history = get_history.sync_detailed("GEN-1", client=integrator)
    assert history.status_code == 200, history.content
    stored = history.parsed.events
    assert [e.version for e in stored] == [1, 2, 3]
    assert [e.type_ for e in stored] == ["patient_registered", "ctc_count", "event_amended"]
    assert stored[1].recorded_by == "integrator"
    assert stored[1].source == "api"


def test_a_generated_client_sees_a_retry_as_a_replay(
    generated_client: ModuleType, integrator: Any
) -> None:
    models = _module(generated_client, "models")
    register = _module(generated_client, "api.patients.register_patient")
    body = models.PatientCreate(
        patient_id="GEN-2",
        occurred="2016",
        sex=models.PatientCreateSex.FEMALE,
        event_id=UUID("0b7c6e0e-8c1d-4a53-9c43-6f3c2a1e9d10"),
    )
    first = register.sync_detailed(client=integrator, body=body)
    again = register.sync_detailed(client=integrator, body=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert (first.headers["Idempotent-Replay"], again.headers["Idempotent-Replay"]) == (
        "false",
        "true",
    )
    assert again.parsed.hash_ == first.parsed.hash_


# -- the docs UI in a real browser, offline ---------------------------------------------------


def test_docs_ui_renders_in_chromium_without_the_internet(
    sqlite_store: StoreConfig, serve_process: Callable[[StoreConfig], str]
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (pip: playwright)"
    )
    url = serve_process(sqlite_store)
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:  # the internet is not there: any request elsewhere fails, and is noted
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_this_server)
            page.goto(f"{url}/schema")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "OncoLedger" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector("#operations-events-appendEvent", timeout=30_000)
        finally:
            browser.close()
    assert outside == []
    assert httpx.get(f"{url}/schema-assets/swagger-ui-bundle.js").status_code == 200


def test_only_the_ctc_view_takes_a_rule(tmp_path: Path) -> None:
    config = StoreConfig(sqlite_path=str(tmp_path / "ledger.db"))
    with OncoLedger(config) as ledger:
        token = ledger.tokens.create("nurse", "clinician")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(config)) as client:
        registered = client.post(
            "/api/v1/patients",
            json={"patient_id": "R1", "sex": "female", "occurred": "2016"},
            headers=auth,
        )
        assert registered.status_code == 201, registered.text
        assert client.get("/api/v1/patients/R1/ctc?rule=ge3", headers=auth).status_code == 200
        for view in ("timeline", "stage", "response", "survival"):
            refused = client.get(f"/api/v1/patients/R1/{view}?rule=ge3", headers=auth)
            assert refused.status_code == 400, (view, refused.text)
            assert "rule" in refused.text, view
            assert client.get(f"/api/v1/patients/R1/{view}", headers=auth).status_code == 200
