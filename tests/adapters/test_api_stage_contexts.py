"""The stage view over HTTP for pathological and post-neoadjuvant assessments (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

V1 = "/api/v1"


@pytest.fixture
def client(store: StoreConfig) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    with TestClient(create_app(store)) as test_client:
        ledger: OncoLedger = test_client.app.state.ledger
        headers = {"Authorization": f"Bearer {ledger.tokens.create('nurse', 'clinician')}"}
        yield test_client, headers


def diagnosed(http: TestClient[Litestar], headers: dict[str, str], **diagnosis: str) -> None:
    """Register P1 and record its diagnosis (histology, grade, tumor_location)."""
    registered = {"patient_id": "P1", "sex": "female", "occurred": "2021-01-04"}
    assert http.post(f"{V1}/patients", json=registered, headers=headers).status_code == 201
    body = {"type": "diagnosis_confirmed", "occurred": "2021-01-05", **diagnosis}
    assert http.post(f"{V1}/patients/P1/events", json=body, headers=headers).status_code == 201


def test_stage_view_names_tables_and_the_compared_assessments(
    client: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    http, headers = client
    diagnosed(http, headers, histology="adenocarcinoma", grade="G2")
    bodies: list[dict[str, Any]] = [
        {"type": "staging", "occurred": "2021-01-10", "t": "T3", "n": "N1", "m": "M0"},
        {
            "type": "chemotherapy",
            "occurred": "2021-02-01",
            "regimen": "FLOT",
            "intent": "neoadjuvant",
        },
        {"type": "surgery", "occurred": "2021-05-01", "procedure": "esophagectomy"},
        {
            "type": "staging",
            "occurred": "2021-05-10",
            "context": "yp",
            "t": "T0",
            "n": "N1",
            "m": "M0",
        },
    ]
    stored = [http.post(f"{V1}/patients/P1/events", json=body, headers=headers) for body in bodies]
    assert [r.status_code for r in stored] == [201] * 4

    stage = http.get(f"{V1}/patients/P1/stage", headers=headers).json()

    assert [(a["tnm"], a["stage_group"], a["table"]) for a in stage["history"]] == [
        ("cT3N1M0", "III", "AJCC8 cTNM adenocarcinoma"),
        ("ypT0N1M0", "IIIA", "AJCC8 ypTNM"),
    ]
    assert stage["trend"] == "unchanged"  # III covers IIIA
    assert (stage["trend_from"], stage["trend_to"]) == (
        stored[0].json()["event_id"],
        stored[3].json()["event_id"],
    )
    assert stage["trend_rule"].startswith("first and latest assessment, any context")


def test_a_pathological_stage_group_that_disagrees_is_422(
    client: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    http, headers = client
    diagnosed(
        http, headers, histology="squamous_cell_carcinoma", grade="G1", tumor_location="unknown"
    )
    staging = {
        "type": "staging",
        "occurred": "2021-03-01",
        "context": "p",
        "t": "T3",
        "n": "N0",
        "m": "M0",
        "stage_group": "IIA",  # G1 with location X is IIB
    }

    response = http.post(f"{V1}/patients/P1/events", json=staging, headers=headers)

    assert response.status_code == 422
    assert "AJCC8 pTNM SCC" in response.json()["detail"]
    assert "IIB" in response.json()["detail"]
