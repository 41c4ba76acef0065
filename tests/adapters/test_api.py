"""The REST API (SPEC §8) through Litestar's TestClient, on SQLite and on PostgreSQL.

Each test gets a fresh store and an application over it, with one token per role.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import V1, Api, assert_error, ctc, diagnosis, staging

from api.app import MAX_BODY_BYTES

# -- service routes -----------------------------------------------------------------------------


def test_health_needs_no_token(sqlite_api: Api) -> None:
    response = sqlite_api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_describes_every_route(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/schema/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in ("get", "post")
    ]
    ids = {op["operationId"] for _, _, op in operations}
    assert {
        "health",
        "registerPatient",
        "listPatients",
        "getPatient",
        "appendEvent",
        "appendEvents",
        "getHistory",
        "amendEvent",
        "retractEvent",
        "getTimeline",
        "getStage",
        "getCtc",
        "getResponse",
        "getSurvival",
        "verifyPatient",
        "getDigest",
    } <= ids
    for path, _, op in operations:
        assert op.get("tags"), path
        if path.startswith(V1):
            assert op["security"] == [{"BearerToken": []}], path
            assert "401" in op["responses"] and "403" in op["responses"], path
    # The single-event body is the tagged union: every event type, with its fields and limits,
    # in its request form (issue 10: without the server-assigned fields).
    body = document["paths"][f"{V1}/patients/{{patient_id}}/events"]["post"]["requestBody"]
    refs = {
        s["$ref"].rsplit("/", 1)[1] for s in body["content"]["application/json"]["schema"]["oneOf"]
    }
    assert {
        "PatientRegisteredCreate",
        "CtcCountCreate",
        "StagingCreate",
        "EventAmendedCreate",
        "EventRetractedCreate",
    } <= refs
    assert len(refs) == 15
    count = document["components"]["schemas"]["CtcCountCreate"]["properties"]["count"]
    assert count["minimum"] == 0
    assert sqlite_api.client.get("/schema").status_code == 200


# -- registration -------------------------------------------------------------------------------


def test_register_patient_answers_201_receipt_and_location(api: Api) -> None:
    response = api.register("P1", sex="female", birth_year=1950, primary_site="esophagus")
    receipt = response.json()
    assert set(receipt) == {"event_id", "version", "recorded_at", "hash"}
    assert receipt["version"] == 1
    assert len(receipt["hash"]) == 64
    uuid.UUID(receipt["event_id"])
    assert response.headers["Location"] == f"{V1}/patients/P1"

    patient = api.get(response.headers["Location"])
    assert patient.status_code == 200
    assert patient.headers["ETag"] == '"1"'
    row = patient.json()
    assert row["patient_id"] == "P1" and row["sex"] == "female" and row["birth_year"] == 1950
    assert row["version"] == 1 and row["events"] == 1

    (event,) = api.get(f"{V1}/patients/P1/events").json()["events"]
    assert event["recorded_by"] == "admin-1" and event["source"] == "api"
    assert event["type"] == "patient_registered"


def test_register_twice_is_a_conflict_unless_it_is_the_same_event(api: Api) -> None:
    event_id = str(uuid.uuid4())
    first = api.register("P1", event_id=event_id).json()
    body = {"patient_id": "P1", "sex": "male", "birth_year": 1940, "occurred": "2016-04-26"}

    again = api.post(f"{V1}/patients", body | {"event_id": event_id, "type": "patient_registered"})
    assert again.status_code == 201 and again.headers["Idempotent-Replay"] == "true"
    assert again.json() == first

    assert_error(api.post(f"{V1}/patients", body | {"event_id": event_id, "sex": "female"}), 409)
    conflict = assert_error(api.post(f"{V1}/patients", body), 409, "already registered")
    assert conflict["extra"] == {"kind": "conflict", "field": "patient_id", "rule": "register_once"}
    assert api.version("P1") == 1


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"sex": None}, 400, ["sex"]),
        ({"sex": "yes"}, 400, ["$.sex"]),
        ({"colour": "blue"}, 400, ["colour"]),
        ({"patient_id": "no spaces"}, 400, ["patient_id"]),
        ({"birth_year": "1940"}, 400, ["Expected `int", "birth_year"]),
        ({"occurred": "2016-13-01"}, 400, ["occurred"]),
        ({"recorded_by": "mallory"}, 400, ["recorded_by"]),
        ({"occurred": "2999-01-01"}, 422, ["future"]),
        ({"occurred": "1930"}, 422, ["birth"]),
    ],
)
def test_register_refusals_name_the_field(
    sqlite_api: Api, change: dict[str, Any], status: int, words: list[str]
) -> None:
    body = {"patient_id": "P1", "sex": "male", "birth_year": 1940, "occurred": "2016-04-26"}
    body = {k: v for k, v in (body | change).items() if v is not None}
    assert_error(sqlite_api.post(f"{V1}/patients", body), status, *words)
    assert sqlite_api.version("P1") == 0


# -- appending ----------------------------------------------------------------------------------


def test_append_one_event_answers_201_with_the_receipt(api: Api) -> None:
    api.register("P1")
    response = api.append("P1", ctc("2016-08-30", 4, assay="CellRich"))
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["version"] == 2
    events = api.get(f"{V1}/patients/P1/events").json()["events"]
    assert events[1]["event_id"] == receipt["event_id"]
    assert events[1]["hash"] == receipt["hash"]
    assert events[1]["prev_hash"] == events[0]["hash"]
    assert events[1]["recorded_by"] == "admin-1"
    assert events[1]["source"] == "api"


def test_same_event_id_again_returns_the_original_receipt_and_stores_nothing(api: Api) -> None:
    api.register("P1")
    event = ctc("2016-08-30", 4, event_id=str(uuid.uuid4()))
    first = api.append("P1", event)
    assert first.status_code == 201
    assert first.headers["Idempotent-Replay"] == "false"
    again = api.append("P1", event, role="clinician")
    assert again.status_code == 201 and again.headers["Idempotent-Replay"] == "true"
    assert again.json() == first.json()
    assert api.version("P1") == 2
    other = assert_error(api.append("P1", event | {"count": 5}), 409, str(event["event_id"]))
    assert other["extra"]["rule"] == "idempotent_event_id"
    assert api.version("P1") == 2


def test_client_cannot_set_server_fields(api: Api) -> None:
    api.register("P1")
    for field, value in [
        ("recorded_by", "mallory"),
        ("source", "cli"),
        ("version", 7),
        ("recorded_at", "2016-01-01T00:00:00Z"),
    ]:
        response = api.append("P1", ctc("2016-08-30", 4) | {field: value})
        assert_error(response, 400, field)
    assert api.version("P1") == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (ctc("2016-08-30", -1), 400, ["$.count"]),
        (ctc("2016-08-30", "4"), 400, ["Expected `int`", "$.count"]),
        (ctc("2016-08-30", 4, blood_volume_ml=0), 400, ["blood_volume_ml"]),
        (ctc("2016-08-30", 4, colour="blue"), 400, ["colour"]),
        ({"type": "ctc_cunt", "occurred": "2016-08-30", "count": 4}, 400, ["ctc_cunt"]),
        ({"occurred": "2016-08-30", "count": 4}, 400, ["type"]),
        ([ctc("2016-08-30", 4)], 400, ["object"]),
        (ctc("2999-08-30", 4), 422, ["future"]),
        (staging(), 422, ["diagnosis_confirmed"]),
        (ctc("2016-08-30", 4, patient_id="P2"), 400, ["patient_id"]),
    ],
)
def test_append_refusals(sqlite_api: Api, body: Any, status: int, words: list[str]) -> None:
    sqlite_api.register("P1")
    assert_error(sqlite_api.append("P1", body), status, *words)
    assert sqlite_api.version("P1") == 1


def test_rule_violation_names_rule_and_field(api: Api) -> None:
    api.register("P1")
    api.append("P1", {"type": "death", "occurred": "2018-07-01", "cause": "cancer"})
    body = assert_error(api.append("P1", ctc("2018-09-01", 0)), 422, "death")
    assert body["extra"]["kind"] == "rule_violation"
    assert body["extra"]["field"] and body["extra"]["rule"]


def test_if_match_appends_only_on_the_expected_version(api: Api) -> None:
    api.register("P1")
    assert api.append("P1", ctc("2016-08-30", 4), headers={"If-Match": '"1"'}).status_code == 201
    stale = assert_error(
        api.append("P1", ctc("2016-09-30", 2), headers={"If-Match": '"1"'}), 412, "version 2"
    )
    assert stale["extra"]["kind"] == "precondition_failed"
    assert api.version("P1") == 2
    assert api.append("P1", ctc("2016-09-30", 2), headers={"If-Match": "*"}).status_code == 201
    assert_error(
        api.append("P1", ctc("2016-10-30", 2), headers={"If-Match": "three"}), 400, "If-Match"
    )
    assert api.version("P1") == 3
    # The ETag of a read is what If-Match takes.
    etag = api.get(f"{V1}/patients/P1/ctc").headers["ETag"]
    assert api.append("P1", ctc("2016-10-30", 0), headers={"If-Match": etag}).status_code == 201


def test_append_to_unknown_patient_is_not_found(api: Api) -> None:
    body = assert_error(api.append("NOBODY", ctc("2016-08-30", 4)), 404, "NOBODY")
    assert body["extra"]["kind"] == "not_found"


# -- batches ------------------------------------------------------------------------------------


def test_batch_is_stored_atomically(api: Api) -> None:
    api.register("P1")
    good = [diagnosis(), staging(), ctc("2016-08-30", 4)]
    bad = [*good[:2], ctc("2999-01-01", 4)]
    assert_error(api.post(f"{V1}/patients/P1/events/batch", {"events": bad}), 422, "future")
    assert api.version("P1") == 1
    invalid = [*good[:2], ctc("2016-08-30", "x")]
    assert_error(
        api.post(f"{V1}/patients/P1/events/batch", {"events": invalid}), 400, "$.events[2].count"
    )
    assert api.version("P1") == 1

    response = api.post(f"{V1}/patients/P1/events/batch", {"events": good})
    assert response.status_code == 201, response.text
    receipts = response.json()["receipts"]
    assert [r["version"] for r in receipts] == [2, 3, 4]
    assert api.get(f"{V1}/patients/P1/stage").json()["current"]["stage_group"] == "IVB"


def test_batch_refusals(api: Api) -> None:
    api.register("P1")
    url = f"{V1}/patients/P1/events/batch"
    assert_error(api.post(url, {"events": []}), 400, "events")
    assert_error(api.post(url, {"event": [ctc("2016-08-30", 4)]}), 400)
    assert_error(
        api.post(url, {"events": [ctc("2016-08-30", 4)]}, headers={"If-Match": '"5"'}), 412
    )
    same = str(uuid.uuid4())
    twice = [ctc("2016-08-30", 4, event_id=same), ctc("2016-09-30", 2, event_id=same)]
    assert_error(api.post(url, {"events": twice}), 400, "twice")
    assert api.version("P1") == 1
    replay = [ctc("2016-08-30", 4, event_id=str(uuid.uuid4()))]
    assert api.post(url, {"events": replay}).status_code == 201
    repeated = api.post(url, {"events": replay})
    assert (repeated.status_code, repeated.headers["Idempotent-Replay"]) == (201, "true")
    assert api.version("P1") == 2


# -- reads --------------------------------------------------------------------------------------


def case_report(api: Api) -> list[dict[str, Any]]:
    """The case report's course in brief: CTC 4 → 2 → 0 while the stage stays IVB."""
    api.register("P1")
    receipts = [
        api.append("P1", body).json()
        for body in (
            diagnosis(),
            staging("2016-05-31"),
            ctc("2016-08-30", 4),
            {
                "type": "imaging",
                "occurred": "2016-09-01",
                "modality": "ct",
                "region": "liver",
                "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [38]}],
            },
            ctc("2017-03-01", 2),
            staging("2017-06-01"),
            ctc("2017-10-30", 0),
            {"type": "death", "occurred": "2018-07-20", "cause": "cancer"},
        )
    ]
    assert all("version" in r for r in receipts), receipts
    return receipts


def test_every_projection_is_served_with_the_stream_version_as_etag(api: Api) -> None:
    case_report(api)
    views = {}
    for view in ("timeline", "stage", "ctc", "response", "survival"):
        response = api.get(f"{V1}/patients/P1/{view}", role="reader")
        assert response.status_code == 200, (view, response.text)
        assert response.headers["ETag"] == '"9"'
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["patient_id"] == "P1"
        views[view] = response.json()
    assert [d["count"] for d in views["ctc"]["draws"]] == [4, 2, 0]
    assert views["ctc"]["trend"] == "decreasing"
    assert views["ctc"]["concordance"]["status"] == "discordant"
    assert views["stage"]["trend"] == "unchanged"
    assert views["survival"]["status"] == "dead"
    assert len(views["timeline"]["events"]) == 9
    assert views["response"]["baseline_sum_mm"] == 38
    # Served as stored, and equal to what the service layer derives.
    for view, body in views.items():
        assert body == json.loads(api.ledger.read_json("P1", view))


def test_history_and_projections_as_of_and_upto(api: Api) -> None:
    receipts = case_report(api)
    events = api.get(f"{V1}/patients/P1/events").json()["events"]
    assert [e["version"] for e in events] == list(range(1, 10))

    upto = api.get(f"{V1}/patients/P1/events", params={"upto": 4}).json()["events"]
    assert [e["version"] for e in upto] == [1, 2, 3, 4]
    ctc_then = api.get(f"{V1}/patients/P1/ctc", params={"upto": 4}).json()
    assert [d["count"] for d in ctc_then["draws"]] == [4]

    # as_of: the instant the 6th event was recorded, in UTC, with an offset and without one.
    at = datetime.fromisoformat(receipts[4]["recorded_at"].replace("Z", "+00:00"))
    for as_of in (at.isoformat(), at.astimezone(UTC).replace(tzinfo=None).isoformat()):
        known = api.get(f"{V1}/patients/P1/events", params={"as_of": as_of}).json()["events"]
        assert len(known) == 6
        draws = api.get(f"{V1}/patients/P1/ctc", params={"as_of": as_of}).json()["draws"]
        assert [d["count"] for d in draws] == [4, 2]
    before = (at - timedelta(days=3650)).isoformat()
    assert api.get(f"{V1}/patients/P1/events", params={"as_of": before}).json()["events"] == []
    assert api.get(f"{V1}/patients/P1/survival", params={"upto": 2}).json()["status"] != "dead"


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/events?upto=x", "upto"),
        ("/events?upto=0", "upto"),
        ("/events?as_of=yesterday", "as_of"),
        ("/stage?as_of=2016-13-45T00:00:00Z", "as_of"),
        ("/ctc?rule=ge2", "rule"),
        ("/timeline?upto=1.5", "upto"),
    ],
)
def test_bad_query_values_are_400(sqlite_api: Api, url: str, field: str) -> None:
    sqlite_api.register("P1")
    body = assert_error(sqlite_api.get(f"{V1}/patients/P1{url}"), 400, field)
    assert body["extra"]["field"] == field


def test_ctc_rule_per_request(api: Api) -> None:
    case_report(api)
    default = api.get(f"{V1}/patients/P1/ctc").json()
    strict = api.get(f"{V1}/patients/P1/ctc", params={"rule": "ge5"}).json()
    assert default["rule"] == "ge1" and strict["rule"] == "ge5"
    assert [d["positive"] for d in default["draws"]] == [True, True, False]
    assert [d["positive"] for d in strict["draws"]] == [False, False, False]
    assert [d["count"] for d in strict["draws"]] == [4, 2, 0]


def test_etag_and_conditional_reads(api: Api) -> None:
    api.register("P1")
    first = api.get(f"{V1}/patients/P1/ctc")
    etag = first.headers["ETag"]
    assert etag == '"1"'
    assert "private" in first.headers["Cache-Control"]
    for url in ("/ctc", "/events", "", "/timeline"):
        unchanged = api.get(f"{V1}/patients/P1{url}", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304, url
        assert unchanged.content == b""
        assert unchanged.headers["ETag"] == etag
    api.append("P1", ctc("2016-08-30", 4))
    changed = api.get(f"{V1}/patients/P1/ctc", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] == '"2"'
    assert api.get(f"{V1}/patients/P1", headers={"If-None-Match": etag}).status_code == 200


def test_reads_of_an_unknown_patient_are_not_found(api: Api) -> None:
    for url in ("", "/events", "/timeline", "/stage", "/ctc", "/response", "/survival", "/verify"):
        assert_error(api.get(f"{V1}/patients/NOBODY{url}"), 404, "NOBODY")
    assert_error(api.get(f"{V1}/patients/bad%20id/ctc"), 400, "patient_id")


# -- the cohort index ---------------------------------------------------------------------------


def test_cohort_index_filters_sorts_and_pages(api: Api) -> None:
    case_report(api)
    api.register("P2", sex="female", birth_year=1960)
    api.register("P3", sex="female", birth_year=1970)
    url = f"{V1}/patients"

    everyone = api.get(url, params={"count": "true"}, role="reader").json()
    assert everyone["total"] == 3
    assert [p["patient_id"] for p in everyone["patients"]] == ["P1", "P2", "P3"]

    women = api.get(url, params={"sex": "female", "sort": "-patient_id"}).json()
    assert women["total"] is None  # counted only when asked
    assert [p["patient_id"] for p in women["patients"]] == ["P3", "P2"]
    either = api.get(url, params=[("sex", "female"), ("sex", "male"), ("count", "true")]).json()
    assert either["total"] == 3
    assert (
        api.get(
            url, params={"birth_year_min": 1955, "birth_year_max": 1965, "count": "true"}
        ).json()["total"]
        == 1
    )
    stage = api.get(url, params={"stage_group": "IVB", "ctc_trend": "decreasing"}).json()
    assert [p["patient_id"] for p in stage["patients"]] == ["P1"]
    assert stage["patients"][0]["concordance"] == "discordant"
    assert api.get(url, params={"survival_status": "dead", "count": "true"}).json()["total"] == 1
    assert api.get(url, params={"status": "dead", "count": "true"}).json()["total"] == 1
    assert api.get(url, params={"events_min": 2, "count": "true"}).json()["total"] == 1
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (
        api.get(url, params={"last_recorded_at_min": future, "count": "true"}).json()["total"] == 0
    )

    page1 = api.get(url, params={"limit": 2}).json()
    assert len(page1["patients"]) == 2 and page1["next_cursor"]
    page2 = api.get(url, params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [p["patient_id"] for p in page2["patients"]] == ["P3"]
    assert page2["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sort": "colour"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sex": "robot"}, "sex"),
        ({"birth_year_min": "old"}, "birth_year_min"),
        ({"last_recorded_at_max": "soon"}, "last_recorded_at_max"),
    ],
)
def test_cohort_index_refuses_bad_queries(
    sqlite_api: Api, query: dict[str, Any], field: str
) -> None:
    body = assert_error(sqlite_api.get(f"{V1}/patients", params=query), 400, field)
    assert body["extra"]["field"] == field


# -- corrections --------------------------------------------------------------------------------


def test_amend_and_retract(api: Api) -> None:
    api.register("P1")
    draw = api.append("P1", ctc("2016-08-30", 4)).json()
    other = api.append("P1", ctc("2016-09-30", 3)).json()
    url = f"{V1}/patients/P1/events"

    amendment = {"reason": "transcription error", "replacement": ctc("2016-08-30", 5)}
    amended = api.post(f"{url}/{draw['event_id']}/amendments", amendment, role="clinician")
    assert amended.status_code == 201, amended.text
    assert amended.json()["version"] == 4
    retracted = api.post(f"{url}/{other['event_id']}/retractions", {"reason": "wrong patient"})
    assert retracted.status_code == 201, retracted.text

    rows = {r["event_id"]: r for r in api.get(f"{V1}/patients/P1/timeline").json()["events"]}
    assert rows[draw["event_id"]]["status"] == "amended"
    assert rows[other["event_id"]]["status"] == "retracted"
    assert [d["count"] for d in api.get(f"{V1}/patients/P1/ctc").json()["draws"]] == [5]
    history = api.get(f"{V1}/patients/P1/events").json()["events"]
    assert history[3]["type"] == "event_amended"
    assert history[3]["target_event_id"] == draw["event_id"]
    assert history[3]["recorded_by"] == "clinician-1"
    assert history[4]["reason"] == "wrong patient"


def test_correction_retry_with_its_own_event_id_is_safe(api: Api) -> None:
    api.register("P1")
    draw = api.append("P1", ctc("2016-08-30", 4)).json()
    url = f"{V1}/patients/P1/events/{draw['event_id']}/retractions"
    body = {"reason": "duplicate draw", "event_id": str(uuid.uuid4())}
    first = api.post(url, body)
    assert first.status_code == 201
    again = api.post(url, body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replay"] == "true"
    assert api.version("P1") == 3


def test_correction_refusals(api: Api) -> None:
    api.register("P1")
    draw = api.append("P1", ctc("2016-08-30", 4)).json()
    url = f"{V1}/patients/P1/events"
    target = f"{url}/{draw['event_id']}"
    amend = {"reason": "typo", "replacement": ctc("2016-08-30", 5)}

    assert_error(api.post(f"{url}/{uuid.uuid4()}/amendments", amend), 404)
    assert_error(api.post(f"{url}/not-a-uuid/amendments", amend), 400, "event_id")
    assert_error(
        api.post(f"{target}/amendments", {"replacement": amend["replacement"]}), 400, "reason"
    )
    assert_error(api.post(f"{target}/amendments", amend | {"reason": ""}), 400, "reason")
    assert_error(api.post(f"{target}/amendments", amend | {"color": 1}), 400, "color")
    wrong_type = {
        "reason": "typo",
        "replacement": {"type": "follow_up", "occurred": "2016-09", "status": "alive"},
    }
    assert_error(api.post(f"{target}/amendments", wrong_type), 422, "type")
    assert_error(api.post(f"{target}/retractions", {}), 400, "reason")
    assert api.version("P1") == 2

    correction = api.post(f"{target}/retractions", {"reason": "entered in error"}).json()
    assert_error(api.post(f"{target}/retractions", {"reason": "again"}), 422, "retracted")
    assert_error(api.post(f"{url}/{correction['event_id']}/amendments", amend), 422, "correction")
    assert api.version("P1") == 3


# -- integrity ----------------------------------------------------------------------------------


def test_verify_and_digest(api: Api) -> None:
    case_report(api)
    report = api.get(f"{V1}/patients/P1/verify", role="auditor").json()
    assert report == {"ok": True, "patients": 1, "events": 9, "breaks": [], "erased": []}
    digest = api.get(f"{V1}/ledger/digest", role="auditor").json()
    assert len(digest["sha256"]) == 64
    assert digest["patients"] == 1 and digest["events"] == 9
    again = api.get(f"{V1}/ledger/digest", params={"as_of": digest["as_of"]}, role="auditor")
    assert again.json()["events"] == 9
    assert_error(
        api.get(f"{V1}/ledger/digest", params={"as_of": "noon"}, role="auditor"), 400, "as_of"
    )


# -- malformed requests: 4xx, never 500 ---------------------------------------------------------


def test_malformed_requests_are_client_errors(api: Api) -> None:
    api.register("P1")
    url = f"{V1}/patients/P1/events"
    json_type = {"Content-Type": "application/json"}
    assert_error(api.post(url, content=b'{"type": "ctc_count", ', headers=json_type), 400, "JSON")
    assert_error(api.post(url, content=b"", headers=json_type), 400, "empty")
    assert_error(api.post(url, content=b"null", headers=json_type), 400)
    assert_error(api.post(url, content=b"\xff\xfe", headers=json_type), 400)
    assert_error(
        api.post(
            url, content=b"count=4", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        415,
        "application/json",
    )
    assert_error(
        api.post(
            url, content=json.dumps(ctc("2016-08-30", 4)), headers={"Content-Type": "text/plain"}
        ),
        415,
    )
    big = ctc("2016-08-30", 4, note="x" * (MAX_BODY_BYTES + 1))
    assert_error(api.post(url, big), 413)
    assert_error(api.get(f"{V1}/nothing-here"), 404)
    assert_error(api.client.delete(f"{V1}/patients/P1", headers=api.auth()), 405)
    assert api.version("P1") == 1


def test_vendor_json_media_types_are_accepted(sqlite_api: Api) -> None:
    sqlite_api.register("P1")
    body = json.dumps(ctc("2016-08-30", 4))
    for media_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = sqlite_api.post(
            f"{V1}/patients/P1/events", content=body, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        body = json.dumps(ctc("2016-09-30", 2))


# -- authentication and roles -------------------------------------------------------------------


Route = Callable[[Api], tuple[str, str, Any]]


def _fresh_patient(api: Api) -> str:
    patient_id = f"P-{uuid.uuid4().hex[:8]}"
    api.register(patient_id)
    return patient_id


def _with_draw(api: Api) -> tuple[str, str]:
    patient_id = _fresh_patient(api)
    draw = api.append(patient_id, ctc("2016-08-30", 4)).json()
    return patient_id, draw["event_id"]


def _register(api: Api) -> tuple[str, str, Any]:
    body = {"patient_id": f"N-{uuid.uuid4().hex[:8]}", "sex": "male", "occurred": "2016-01"}
    return "POST", f"{V1}/patients", body


def _append(api: Api) -> tuple[str, str, Any]:
    return "POST", f"{V1}/patients/P1/events", ctc("2016-08-30", 4)


def _batch(api: Api) -> tuple[str, str, Any]:
    return "POST", f"{V1}/patients/P1/events/batch", {"events": [ctc("2016-08-30", 4)]}


def _amend(api: Api) -> tuple[str, str, Any]:
    patient_id, event_id = _with_draw(api)
    body = {"reason": "typo", "replacement": ctc("2016-08-30", 5)}
    return "POST", f"{V1}/patients/{patient_id}/events/{event_id}/amendments", body


def _retract(api: Api) -> tuple[str, str, Any]:
    patient_id, event_id = _with_draw(api)
    return "POST", f"{V1}/patients/{patient_id}/events/{event_id}/retractions", {"reason": "dup"}


def _read(path: str) -> Route:
    return lambda api: ("GET", f"{V1}{path}", None)


READ, WRITE, AUDIT = (
    {"none": 401, "reader": 200, "clinician": 200, "auditor": 200, "admin": 200},
    {"none": 401, "reader": 403, "clinician": 201, "auditor": 403, "admin": 201},
    {"none": 401, "reader": 403, "clinician": 403, "auditor": 200, "admin": 200},
)
ROUTES: list[tuple[str, Route, dict[str, int]]] = [
    ("list patients", _read("/patients"), READ),
    ("get patient", _read("/patients/P1"), READ),
    ("history", _read("/patients/P1/events"), READ),
    ("timeline", _read("/patients/P1/timeline"), READ),
    ("stage", _read("/patients/P1/stage"), READ),
    ("ctc", _read("/patients/P1/ctc?rule=ge3"), READ),
    ("response", _read("/patients/P1/response"), READ),
    ("survival", _read("/patients/P1/survival"), READ),
    ("register", _register, WRITE),
    ("append", _append, WRITE),
    ("batch", _batch, WRITE),
    ("amend", _amend, WRITE),
    ("retract", _retract, WRITE),
    ("verify", _read("/patients/P1/verify"), AUDIT),
    ("digest", _read("/ledger/digest"), AUDIT),
]


def test_role_table(api: Api) -> None:
    """SPEC §8 roles, route by route: a refused request changes nothing."""
    api.register("P1")
    mismatches = []
    for name, route, expected in ROUTES:
        for role, status in expected.items():
            method, url, body = route(api)
            headers = {} if role == "none" else api.auth(role)
            before = api.ledger.views.status()["head"]
            response = api.client.request(method, url, json=body, headers=headers)
            if response.status_code != status:
                mismatches.append(f"{name} as {role}: {response.status_code} != {status}")
            if status in (401, 403) and api.ledger.views.status()["head"] != before:
                mismatches.append(f"{name} as {role}: stored something")
            if status == 403:
                needed = response.json()["detail"]
                assert f"has role {role}" in needed and "needed" in needed, needed
    assert not mismatches, "\n".join(mismatches)


def test_without_a_valid_token_nothing_is_stored(api: Api) -> None:
    api.register("P1")
    url = f"{V1}/patients/P1/events"
    body = ctc("2016-08-30", 4)

    missing = assert_error(api.client.post(url, json=body), 401, "Authorization: Bearer")
    assert missing["extra"]["kind"] == "unauthorized"
    assert api.client.post(url, json=body).headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(
        api.client.post(url, json=body, headers={"Authorization": "Basic abc"}), 401, "Bearer"
    )
    assert_error(api.client.post(url, json=body, headers={"Authorization": "Bearer "}), 401)
    unknown = {"Authorization": "Bearer olk_000000000000_" + "A" * 43}
    assert_error(api.client.post(url, json=body, headers=unknown), 401, "unknown or revoked")
    # Authentication comes first: an unauthenticated bad body is still a 401.
    assert_error(
        api.client.post(url, content=b"{", headers={"Content-Type": "application/json"}), 401
    )

    api.ledger.tokens.revoke("clinician-1")
    assert_error(api.append("P1", body, role="clinician"), 401, "unknown or revoked")
    assert_error(api.append("P1", body, role="reader"), 403, "role clinician or admin", "reader")
    assert_error(api.get(f"{V1}/patients/P1/verify", role="clinician"), 401)
    assert api.version("P1") == 1
    assert api.append("P1", body, role="admin").status_code == 201


def test_recorded_by_is_the_token_name(api: Api) -> None:
    api.register("P1")
    api.append("P1", ctc("2016-08-30", 4), role="clinician")
    events = api.get(f"{V1}/patients/P1/events", role="reader").json()["events"]
    assert [e["recorded_by"] for e in events] == ["admin-1", "clinician-1"]
    assert {e["source"] for e in events} == {"api"}
