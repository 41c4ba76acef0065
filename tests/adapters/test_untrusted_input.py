"""Issue 9, cases 2-4 and 8: what a client sends can be refused, never break the ledger.

Text either store cannot hold (NUL, unpaired surrogates) is refused at validation, naming the
field, nested fields included; undecodable or over-deep JSON is refused by the parser; forged
cursors and malformed query strings are 400s; a 500 is logged under a correlation id.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from helpers import V1, Api, Cli, start_api

from cli.main import cli
from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

REG = {"type": "patient_registered", "occurred": "2020-01-01", "sex": "male"}
CTC = {"type": "ctc_count", "occurred": "2021-01-01", "count": 1}
DEEP = b"[" * 10_000 + b"]" * 10_000
NUL = "oops\u0000"


@pytest.fixture
def run(store: StoreConfig) -> Cli:
    return Cli(store, actor="dm", expect=None)


# -- case 2: text either store cannot hold, wherever it is in the body ----------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (CTC | {"note": NUL}, "note"),
        (CTC | {"assay": "a\u0000b"}, "assay"),
        ({"type": "chemotherapy", "occurred": "2021", "regimen": "TP",
          "agents": ["paclitaxel", "cis\u0000platin"]}, "agents[1]"),
        ({"type": "imaging", "occurred": "2021", "modality": "ct", "region": "chest",
          "lesions": [{"lesion_id": "l1", "site": NUL, "dimensions_mm": [10]}]}, "lesions[0].site"),
        ({"type": "therapy_declined", "occurred": "2021", "scope": "all_antitumor",
          "reason": NUL}, "reason"),
        (CTC | {"note": "half a pair \ud83d"}, "note"),
    ],
)  # fmt: skip
def test_unstorable_text_is_refused_naming_the_field(
    store: StoreConfig, body: dict[str, Any], field: str
) -> None:
    with OncoLedger(store) as system:
        system.append("P1", [REG], actor="a", source="cli")
        with pytest.raises(ValidationFailed) as refused:
            system.append("P1", [body], actor="a", source="cli")
        assert refused.value.field == field and refused.value.rule == "storable_text"
        assert f"`$.{field}`" in refused.value.message
        assert system.version("P1") == 1


def test_unstorable_text_in_corrections_is_refused(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        system.append("P1", [REG], actor="a", source="cli")
        target = system.append("P1", [CTC], actor="a", source="cli")[0].event_id
        with pytest.raises(ValidationFailed) as refused:
            system.retract("P1", target, reason=NUL, actor="a", source="cli")
        assert refused.value.field == "reason"
        with pytest.raises(ValidationFailed) as refused:
            system.amend("P1", target, CTC | {"note": NUL}, reason="typo", actor="a", source="cli")
        assert refused.value.field == "replacement.note"
        assert system.version("P1") == 2
        # and the stream and its views go on as before
        assert system.append("P1", [CTC | {"count": 2}], actor="a", source="cli")[0].version == 3
        assert system.views.status()["behind"] == 0


def test_record_refuses_an_unpaired_surrogate_with_exit_2(run: Cli) -> None:
    # (an argument with a byte that is not UTF-8 reaches Python as an unpaired surrogate)
    assert run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-01").exit_code == 0
    result = run("record", "P1", "ctc", "--on", "2021-01-01", "--count", "1", "--note", "x\udcff")
    assert result.exit_code == 2, result.output
    assert "`$.note`" in result.stderr and "surrogate" in result.stderr
    assert run.stored() == 1


# -- case 3: import and append --------------------------------------------------------------------


def lines(*items: bytes) -> bytes:
    return b"\n".join(items) + b"\n"


def event_line(patient_id: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"patient_id": patient_id, **body}).encode()


def test_import_refuses_bad_lines_by_number_and_goes_on(run: Cli, tmp_path: Path) -> None:
    # given a file with a BOM, an undecodable line, a 10,000-level line and a NUL in a note
    data = b"\xef\xbb\xbf" + lines(
        event_line("P1", REG),
        b'{"patient_id":"P1","type":"ctc_count","occurred":"2021","count":1,"note":"\xff"}',
        DEEP,
        event_line("P1", CTC | {"note": NUL}),
        event_line("P1", CTC | {"count": 3}),
        event_line("P2", REG),
    )
    file = tmp_path / "bad.jsonl"
    file.write_bytes(data)
    # when it is imported
    result = run("import", str(file), "--json")
    # then each bad line is refused with its number and reason, the others are stored
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["stored"] == 3
    failed = {item["line"]: item["reason"] for item in report["failed"]}
    assert sorted(failed) == [2, 3, 4]
    assert "not valid UTF-8" in failed[2]
    assert "nested more than" in failed[3]
    assert "`$.note`" in failed[4] and "NUL" in failed[4]
    assert "unexpected" not in result.stderr
    # and the views are current
    assert run.stored() == 3 and run.behind() == 0


def test_append_refuses_the_whole_input_naming_the_element(run: Cli) -> None:
    assert run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-01").exit_code == 0
    batch = json.dumps([CTC, CTC | {"note": NUL}])
    result = run("append", "P1", "-", input=batch)
    assert result.exit_code == 2 and "`$[1].note`" in result.stderr
    result = run("append", "P1", "-", input=json.dumps([CTC, CTC | {"count": -1}]))
    assert result.exit_code == 2 and "element 1 of the batch" in result.stderr
    for data in (b'{"type":"ctc_count","note":"\xff"}', DEEP):
        result = run("append", "P1", "-", input=data)
        assert result.exit_code == 2 and "unexpected" not in result.stderr, result.stderr
    assert run.stored() == 1
    # a leading BOM is not part of the JSON
    result = run("append", "P1", "-", input=b"\xef\xbb\xbf" + json.dumps(CTC).encode())
    assert result.exit_code == 0, result.stderr


def test_import_takes_an_exports_events_and_reports_the_server_fields(
    run: Cli, tmp_path: Path
) -> None:
    # given a patient's export, one event per line (as `jq -c '.events[]'` writes it)
    assert run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-01").exit_code == 0
    assert run("record", "P1", "ctc", "--on", "2021-01-01", "--count", "2").exit_code == 0
    events = json.loads(run("export", "P1").stdout)["events"]
    assert all(e["version"] and e["hash"] and e["recorded_at"] for e in events)
    file = tmp_path / "p1.jsonl"
    file.write_text("".join(json.dumps(e) + "\n" for e in events))
    # when it is imported again, its lines are accepted: the server-assigned fields are
    # ignored (and counted), and the same event ids with the same bodies are retries
    result = run("import", str(file), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == {"stored": 0, "duplicates": 2, "failed": [], "server_fields_ignored": 2}
    assert run.stored() == 2
    # while REST, where a client writes live, refuses them (they are the server's to assign)


# -- case 4: REST ---------------------------------------------------------------------------------


@pytest.fixture
def api(store: StoreConfig) -> Iterator[Api]:
    for api in start_api(store, base=V1, raise_server_exceptions=False):
        body = {"patient_id": "P1", **REG}
        body.pop("type")
        assert api.post("/patients", json.dumps(body).encode()).status_code == 201
        yield api


def refused_400(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["extra"]["field"] == field, body
    return body


def test_rest_refuses_bad_bodies_on_every_write_route(api: Api) -> None:
    target = json.loads(api.post("/patients/P1/events", json.dumps(CTC).encode()).text)
    routes = (
        "/patients",
        "/patients/P1/events",
        "/patients/P1/events/batch",
        f"/patients/P1/events/{target['event_id']}/amendments",
        f"/patients/P1/events/{target['event_id']}/retractions",
    )
    for url in routes:
        refused_400(api.post(url, b'{"reason":"\xff\xfe"}'), "$")
        body = refused_400(api.post(url, DEEP), "$")
        assert "nested" in body["detail"]
        refused_400(api.post(url, b'{"reason": "x\\u0000"}'), "reason")
    # nested fields are named with their path
    retraction = f"/patients/P1/events/{target['event_id']}/retractions"
    refused_400(api.post(retraction, json.dumps({"reason": NUL}).encode()), "reason")
    amendment = retraction.replace("retractions", "amendments")
    body = json.dumps({"reason": "r", "replacement": CTC | {"note": NUL}}).encode()
    refused_400(api.post(amendment, body), "replacement.note")
    batch = json.dumps({"events": [CTC, CTC | {"note": NUL}]}).encode()
    refused_400(api.post("/patients/P1/events/batch", batch), "events[1].note")
    # nothing was stored, and the ledger goes on
    assert api.ledger.version("P1") == 2
    assert api.post("/patients/P1/events", json.dumps(CTC).encode()).status_code == 201
    assert api.get("/patients/P1/ctc").status_code == 200


def test_rest_refuses_cursors_it_could_not_have_handed_out(api: Api) -> None:
    forged = [
        base64.urlsafe_b64encode(b"o:" + b"9" * 20).decode(),
        base64.urlsafe_b64encode(b"o:0").decode(),
        base64.urlsafe_b64encode(b"o:+5").decode(),
        base64.urlsafe_b64encode(b"o:\xd9\xa3".decode().encode()).decode(),  # Arabic-Indic 3
        "not base64!",
        base64.urlsafe_b64encode(b"o:5").decode() + "==",  # o:5, padded as it never is
    ]
    for cursor in forged:
        refused_400(api.get(f"/patients?cursor={cursor}"), "cursor")
    # a cursor the server hands out still works
    for pid in ("P2", "P3"):
        body = {"patient_id": pid, **REG}
        body.pop("type")
        api.post("/patients", json.dumps(body).encode())
    page = api.get("/patients?limit=1").json()
    assert api.get(f"/patients?limit=1&cursor={page['next_cursor']}").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/patients",
        "/patients/P1/events",
        "/patients/P1/stage",
        "/patients/P1/ctc",
        "/audit",
        "/patients/P1/audit",
        "/access-log",
        "/ledger/digest",
    ],
)
def test_unknown_query_parameters_are_refused(api: Api, url: str) -> None:
    body = refused_400(api.get(f"{url}?stage_grup=IVB"), "stage_grup")
    assert body["extra"]["rule"] == "unknown_parameter"


@pytest.mark.parametrize("url", ["/patients", "/audit", "/access-log"])
def test_malformed_limits_are_refused(api: Api, url: str) -> None:
    for value in ("1e3", "10.0", "0x10", " 5"):
        refused_400(api.get(f"{url}?limit={value}"), "limit")
    assert api.get(f"{url}?limit=5").status_code == 200


def test_malformed_sort_is_refused(api: Api) -> None:
    for sort in ("--patient_id", "-", "patient_id-", "+patient_id"):
        refused_400(api.get(f"/patients?sort={sort}"), "sort")
    assert api.get("/patients?sort=-patient_id").status_code == 200


# -- case 8: a 500 is explained in the server's output ---------------------------------------------


def test_a_500_is_logged_with_its_traceback_and_a_correlation_id(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("the disk controller caught fire")

    monkeypatch.setattr(api.ledger, "patients", broken)
    with caplog.at_level(logging.ERROR, logger="oncoledger.api"):
        response = api.get("/patients")
    assert response.status_code == 500
    body = response.json()
    correlation_id = body["extra"]["correlation_id"]
    assert correlation_id in body["detail"] and "Traceback" not in response.text
    assert "caught fire" not in response.text
    (record,) = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert record.exc_info is not None and "caught fire" in str(record.exc_info[1])


@pytest.mark.parametrize("data", [DEEP, b'{"format": "\xff"}'])
def test_verify_file_reports_an_unreadable_export_without_a_crash(
    tmp_path: Path, data: bytes
) -> None:
    # (no database is opened: the export is checked offline)
    file = tmp_path / "export.json"
    file.write_bytes(data)
    result = CliRunner().invoke(cli, ["verify", "--file", str(file)])
    assert result.exit_code == 5, result.output
    assert "not valid JSON" in result.stderr and "unexpected" not in result.stderr


def test_amend_body_with_an_unpaired_surrogate_exits_2(run: Cli) -> None:
    assert run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-01").exit_code == 0
    result = run("record", "P1", "ctc", "--on", "2021-01-01", "--count", "1", "--json")
    event_id = json.loads(result.stdout)["event_id"]
    body = '{"type": "ctc_count", "occurred": "2021-01-01", "count": 2, "note": "x\udcff"}'
    result = run("amend", "P1", event_id, "--reason", "typo", "--body", body)
    assert result.exit_code == 2, result.output
    assert "surrogate" in result.stderr and "unexpected" not in result.stderr
    assert run.stored() == 2


def test_an_actor_that_cannot_be_stored_is_refused_before_any_read_or_write(run: Cli) -> None:
    assert run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-01").exit_code == 0
    for command in (("stage", "P1"), ("record", "P1", "ctc", "--on", "2021", "--count", "1")):
        result = run("--actor", "nurse\udcff", *command)
        assert result.exit_code == 2, result.output
        assert "--actor" in result.stderr and "surrogate" in result.stderr
    assert run.stored() == 1


def test_a_nul_an_older_version_stored_never_stalls_the_views(store: StoreConfig) -> None:
    # given a retraction whose reason an older version stored with a NUL in it
    with OncoLedger(store) as system:
        system.append("P1", [REG], actor="a", source="cli")
        target = system.append("P1", [CTC], actor="a", source="cli")[0].event_id
        system.retract("P1", target, reason="oops", actor="a", source="cli")
    nul_reason = 'replace(%s, \'"reason":"oops"\', \'"reason":"oops\\u0000"\')'
    if store.database_url:
        with psycopg.connect(store.database_url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {store.schema}")
            text = nul_reason % "convert_from(state, 'UTF8')"
            conn.execute(f"UPDATE oncoledger_events SET state = convert_to({text}, 'UTF8')")
    else:
        assert store.sqlite_path
        with sqlite3.connect(store.sqlite_path) as conn:
            text = nul_reason % "CAST(state AS TEXT)"
            conn.execute(f"UPDATE stored_events SET state = CAST({text} AS BLOB)")
    # when the views are built again, every event is in them; the NUL shows as U+FFFD
    with OncoLedger(store) as system:
        assert system.history("P1")[-1].reason == "oops\u0000"  # type: ignore[union-attr]
        assert system.views.rebuild() == 3
        entries = system.audit("P1", corrections=True).entries
        assert [e.reason for e in entries] == ["oops\ufffd"]
        assert system.read("P1", "timeline") is not None


def test_text_that_only_looks_like_an_escaped_nul_is_stored(api: Api) -> None:
    # a backslash followed by `u0000` is ordinary text (JSON `\\u0000`), not a NUL
    body = json.dumps(CTC | {"note": "path C:\\u0000 typed literally"}).encode()
    response = api.post("/patients/P1/events", body)
    assert response.status_code == 201, response.text
    assert api.ledger.history("P1")[-1].note == "path C:\\u0000 typed literally"
