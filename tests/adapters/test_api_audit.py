"""The auditor's routes (SPEC §4 audit, §6, §8): change audit, access log and export over HTTP.

On SQLite and on PostgreSQL, through Litestar's TestClient, with the fixtures of `test_api`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from helpers import V1, Api, assert_error, ctc, diagnosis, staging, start_api

from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

# The client address Litestar's TestClient puts in every request's scope.
CLIENT_ADDRESS = "testclient"
AUDIT_ROUTES = (
    f"{V1}/audit",
    f"{V1}/patients/P1/audit",
    f"{V1}/access-log",
    f"{V1}/patients/P1/export",
)


@pytest.fixture
def api(store: StoreConfig) -> Iterator[Api]:
    for api in start_api(store):
        # Three clinicians: one records, one amends, one retracts.
        for name in ("clinician-2", "clinician-3"):
            api.tokens[name] = api.ledger.tokens.create(name, "clinician")
        yield api


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def scenario(api: Api) -> dict[str, dict[str, Any]]:
    """clinician-1 records P1 and P2; clinician-2 amends a CTC count; clinician-3 retracts a
    staging. Returns the receipts by name."""
    patient = {"sex": "male", "birth_year": 1940, "occurred": "2016-04-26"}
    receipts = {
        "P1": created(api.post(f"{V1}/patients", {"patient_id": "P1", **patient}, "clinician"))
    }
    for name, body in (
        ("diagnosis", diagnosis()),
        ("staging", staging()),
        ("ctc", ctc("2016-08-30", 4)),
    ):
        receipts[name] = created(api.append("P1", body, role="clinician"))
    receipts["P2"] = created(
        api.post(f"{V1}/patients", {"patient_id": "P2", **patient}, "clinician")
    )
    receipts["P2 ctc"] = created(api.append("P2", ctc("2016-09-30", 1), role="clinician"))
    events = f"{V1}/patients/P1/events"
    amendment = {"reason": "transcription error", "replacement": ctc("2016-08-30", 5)}
    receipts["amendment"] = created(
        api.post(f"{events}/{receipts['ctc']['event_id']}/amendments", amendment, "clinician-2")
    )
    retraction = {"reason": "staged the wrong patient"}
    receipts["retraction"] = created(
        api.post(
            f"{events}/{receipts['staging']['event_id']}/retractions", retraction, "clinician-3"
        )
    )
    return receipts


def audit(api: Api, url: str = f"{V1}/audit", **query: Any) -> list[dict[str, Any]]:
    response = api.get(url, role="auditor", params=query)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["next_cursor"] is None
    entries: list[dict[str, Any]] = page["entries"]
    return entries


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in entries]


def access_log(api: Api, role: str = "auditor", **query: Any) -> list[dict[str, Any]]:
    response = api.get(f"{V1}/access-log", role=role, params=query)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


# -- the change audit ---------------------------------------------------------------------------


def test_audit_lists_every_stored_event_in_recording_order(api: Api) -> None:
    receipts = scenario(api)
    entries = audit(api)
    assert ids(entries) == [r["event_id"] for r in receipts.values()]
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [e["type"] for e in entries] == [
        "patient_registered",
        "diagnosis_confirmed",
        "staging",
        "ctc_count",
        "patient_registered",
        "ctc_count",
        "event_amended",
        "event_retracted",
    ]
    assert [e["patient_id"] for e in entries] == ["P1"] * 4 + ["P2"] * 2 + ["P1"] * 2
    assert [e["recorded_by"] for e in entries] == ["clinician-1"] * 6 + [
        "clinician-2",
        "clinician-3",
    ]
    assert {e["source"] for e in entries} == {"api"}
    first = entries[0]
    assert set(first) == {
        "position",
        "recorded_at",
        "recorded_by",
        "source",
        "type",
        "patient_id",
        "version",
        "event_id",
        "target_event_id",
        "reason",
    }
    assert first["recorded_at"] == receipts["P1"]["recorded_at"]
    assert first["target_event_id"] is None and first["reason"] is None
    amendment, retraction = entries[-2:]
    assert amendment["target_event_id"] == receipts["ctc"]["event_id"]
    assert amendment["reason"] == "transcription error"
    assert amendment["version"] == 5
    assert retraction["target_event_id"] == receipts["staging"]["event_id"]
    assert retraction["reason"] == "staged the wrong patient"


def test_audit_filters_return_exactly_the_matching_rows(api: Api) -> None:
    receipts = scenario(api)
    everything = audit(api)
    amendment, retraction = receipts["amendment"]["event_id"], receipts["retraction"]["event_id"]

    assert ids(audit(api, actor="clinician-2")) == [amendment]
    assert ids(audit(api, actor="clinician-3")) == [retraction]
    assert audit(api, actor="nobody") == []
    assert ids(audit(api, type="staging")) == [receipts["staging"]["event_id"]]
    both = audit(api, type=["ctc_count", "diagnosis_confirmed"])
    assert ids(both) == [receipts[n]["event_id"] for n in ("diagnosis", "ctc", "P2 ctc")]
    assert ids(audit(api, corrections="true")) == [amendment, retraction]
    assert ids(audit(api, corrections="true", actor="clinician-3")) == [retraction]
    assert ids(audit(api, corrections="true", type="event_amended")) == [amendment]
    assert audit(api, corrections="true", type="ctc_count") == []
    assert len(audit(api, corrections="false")) == len(everything)

    # since / until bound recorded_at inclusively; offsets and naive (UTC) instants alike.
    cut = receipts["P2"]["recorded_at"]
    later = [e["event_id"] for e in everything if at(e["recorded_at"]) >= at(cut)]
    earlier = [e["event_id"] for e in everything if at(e["recorded_at"]) <= at(cut)]
    assert 0 < len(later) < len(everything) and 0 < len(earlier) < len(everything)
    assert ids(audit(api, since=cut)) == later
    assert ids(audit(api, until=cut)) == earlier
    assert ids(audit(api, since=cut.replace("Z", "+00:00"))) == later
    assert ids(audit(api, since=cut.removesuffix("Z"))) == later
    assert ids(audit(api, since=cut, until=cut)) == [receipts["P2"]["event_id"]]
    assert ids(audit(api, since=cut, actor="clinician-1")) == [
        receipts["P2"]["event_id"],
        receipts["P2 ctc"]["event_id"],
    ]
    assert audit(api, since="2999-01-01T00:00:00Z") == []


def test_patient_audit_lists_one_patient(api: Api) -> None:
    receipts = scenario(api)
    p1 = audit(api, f"{V1}/patients/P1/audit")
    assert {e["patient_id"] for e in p1} == {"P1"}
    assert [e["version"] for e in p1] == [1, 2, 3, 4, 5, 6]
    p2 = audit(api, f"{V1}/patients/P2/audit")
    assert ids(p2) == [receipts["P2"]["event_id"], receipts["P2 ctc"]["event_id"]]
    corrections = audit(api, f"{V1}/patients/P1/audit", corrections="true", actor="clinician-2")
    assert ids(corrections) == [receipts["amendment"]["event_id"]]
    assert audit(api, f"{V1}/patients/P2/audit", corrections="true") == []
    assert audit(api, f"{V1}/patients/P2/audit", since="2999-01-01T00:00:00Z") == []
    assert_error(api.get(f"{V1}/patients/NOBODY/audit", role="auditor"), 404, "NOBODY")


@pytest.mark.parametrize("url", [f"{V1}/audit", f"{V1}/patients/P1/audit"])
def test_audit_pages_return_every_row_once(api: Api, url: str) -> None:
    scenario(api)
    everything = audit(api, url)
    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 3}
    pages = 0
    while True:
        page = api.get(url, role="admin", params=query).json()
        pages += 1
        seen.extend(page["entries"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["entries"][-1]["position"]
        query["after"] = page["next_cursor"]
    assert seen == everything
    assert pages == -(-len(everything) // 3)
    last = everything[-1]["position"]
    assert api.get(url, role="auditor", params={"after": last}).json() == {
        "entries": [],
        "next_cursor": None,
    }


# -- the access log -----------------------------------------------------------------------------


def test_access_log_shows_clinical_reads_and_the_auditors_own_reads(api: Api) -> None:
    scenario(api)
    for view in ("ctc", "stage"):
        assert api.get(f"{V1}/patients/P1/{view}", role="reader").status_code == 200
    assert api.get(f"{V1}/patients", role="reader").status_code == 200

    reads = access_log(api, actor="reader-1")
    assert [(e["resource"], e["patient_id"]) for e in reads] == [
        ("ctc", "P1"),
        ("stage", "P1"),
        ("patients", None),
    ]
    assert {(e["channel"], e["address"]) for e in reads} == {("api", CLIENT_ADDRESS)}
    assert all(len(e["hash"]) == 64 for e in reads)
    assert [e["resource"] for e in access_log(api, patient_id="P1", actor="reader-1")] == [
        "ctc",
        "stage",
    ]
    # The first look at the log was logged, though not in the answer it was given.
    own = access_log(api, actor="auditor-1")
    assert [(e["resource"], e["patient_id"]) for e in own] == [
        ("access-log", None),
        ("access-log", "P1"),
    ]
    assert {e["address"] for e in own} == {CLIENT_ADDRESS}
    assert len(access_log(api, actor="auditor-1")) == 3

    # Audit and export reads are recorded too, with the patient they concern.
    audit(api)
    audit(api, f"{V1}/patients/P2/audit")
    assert api.get(f"{V1}/patients/P2/export", role="admin").status_code == 200
    logged = access_log(api, role="admin", actor="auditor-1")[-2:]
    assert [(e["resource"], e["patient_id"]) for e in logged] == [("audit", None), ("audit", "P2")]
    (export,) = access_log(api, actor="admin-1", patient_id="P2")
    assert export["resource"] == "export" and export["channel"] == "api"


def test_access_log_filters_and_pages(api: Api) -> None:
    scenario(api)
    for view in ("ctc", "stage", "timeline", "survival"):
        api.get(f"{V1}/patients/P1/{view}", role="reader")
    api.get(f"{V1}/patients/P2/ctc", role="clinician")
    everything = access_log(api, limit=1000)

    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 2}
    while True:
        page = api.get(f"{V1}/access-log", role="auditor", params=query).json()
        seen.extend(page["entries"])
        if page["next_cursor"] is None:
            break
        query["after"] = page["next_cursor"]
    # Each page read is itself appended after it was answered: the walk sees the first query's
    # row and the page reads before the last, each once, in chain order.
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seen) + 1))
    assert seen[: len(everything)] == everything
    assert {e["resource"] for e in seen[len(everything) :]} == {"access-log"}

    since, until = everything[1]["at"], everything[3]["at"]
    between = [e["seq"] for e in everything if at(since) <= at(e["at"]) <= at(until)]
    assert 2 <= len(between) < len(everything)
    assert [e["seq"] for e in access_log(api, since=since, until=until)] == between
    assert [e["patient_id"] for e in access_log(api, actor="clinician-1")] == ["P2"]
    assert access_log(api, since="2999-01-01T00:00:00Z") == []


# -- export -------------------------------------------------------------------------------------


def test_export_verifies_offline(api: Api) -> None:
    scenario(api)
    response = api.get(f"{V1}/patients/P1/export", role="auditor")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["patient_id"] == "P1"
    assert document["head"]["version"] == len(document["events"]) == 6
    assert document["events"][-1]["hash"] == document["head"]["hash"]
    report = OncoLedger.verify_export(response.content)
    assert report.ok, report
    assert report.events == 6
    assert OncoLedger.verify_export(response.content, digest=document["chain_digest"]).ok
    tampered = response.content.replace(b"transcription error", b"transcription errer")
    assert not OncoLedger.verify_export(tampered).ok
    assert_error(api.get(f"{V1}/patients/NOBODY/export", role="auditor"), 404, "NOBODY")


# -- roles and refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("url", AUDIT_ROUTES)
def test_only_auditors_and_admins(api: Api, url: str) -> None:
    api.register("P1")
    before = api.ledger.access_log.head()
    assert_error(api.client.get(url), 401, "Authorization: Bearer")
    for role in ("reader", "clinician"):
        body = assert_error(api.get(url, role=role), 403, f"has role {role}")
        assert body["extra"] == {"kind": "forbidden", "field": "Authorization", "rule": "role"}
    # A refused request is not a read: nothing was logged.
    assert api.ledger.access_log.head() == before
    for role in ("auditor", "admin"):
        assert api.get(url, role=role).status_code == 200, role


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        ("/audit", {"since": "yesterday"}, "since"),
        ("/audit", {"until": "2016-13-45T00:00:00Z"}, "until"),
        ("/audit", {"limit": 0}, "limit"),
        ("/audit", {"limit": 1001}, "limit"),
        ("/audit", {"limit": "ten"}, "limit"),
        ("/audit", {"after": -1}, "after"),
        ("/audit", {"after": 2**63}, "after"),
        ("/audit", {"type": "ctc_cunt"}, "type"),
        ("/audit", {"corrections": "perhaps"}, "corrections"),
        ("/audit", {"actor": ""}, "actor"),
        ("/audit", {"actor": "\x00"}, "actor"),
        ("/audit", {"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ("/patients/P1/audit", {"since": "noon"}, "since"),
        ("/patients/P1/audit", {"type": "nothing"}, "type"),
        ("/patients/bad%20id/audit", {}, "patient_id"),
        ("/access-log", {"since": "noon"}, "since"),
        ("/access-log", {"until": "later"}, "until"),
        ("/access-log", {"until": "9999-12-31T23:59:59-14:00"}, "until"),
        ("/access-log", {"actor": "\x00"}, "actor"),
        ("/access-log", {"limit": 0}, "limit"),
        ("/access-log", {"after": "x"}, "after"),
        ("/access-log", {"patient_id": "bad id"}, "patient_id"),
        ("/patients/bad%20id/export", {}, "patient_id"),
    ],
)
def test_bad_query_values_are_400(api: Api, url: str, query: dict[str, Any], field: str) -> None:
    api.register("P1")
    before = api.ledger.access_log.head()
    body = assert_error(api.get(f"{V1}{url}", role="auditor", params=query), 400, field)
    assert body["extra"]["field"] == field
    assert api.ledger.access_log.head() == before
