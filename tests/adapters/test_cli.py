"""The `oncoledger` command line through click's CliRunner: exit codes, parsed output, stderr.

Every test gets its own store (a SQLite file, or a PostgreSQL schema when one is provided).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import Result
from helpers import Cli

from cli.record import BODY_OPTIONS, CLINICAL_TYPES, ENVELOPE_FIELDS
from domain import events as ev
from domain.demo import CASE_REPORT_PATIENT, demo_patients


def register(run: Cli, patient_id: str = "P1", *extra: str) -> None:
    run("patient", "register", patient_id, "--sex", "male", "--on", "2016-04-26", *extra)


def diagnose(run: Cli, patient_id: str = "P1") -> None:
    run("record", patient_id, "diagnosis", "--on", "2016-05-09", "--histology",
        "squamous_cell_carcinoma", "--grade", "G3")  # fmt: skip


def history(run: Cli, patient_id: str = "P1", *args: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = run.json("history", patient_id, *args)
    return events


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in result.stderr
    return lines[-1]


# -- demo and history --------------------------------------------------------------------------


def test_demo_then_history_shows_the_case_in_order(run: Cli) -> None:
    run("demo", "--quiet")
    events = history(run, CASE_REPORT_PATIENT)
    expected = dict(demo_patients())[CASE_REPORT_PATIENT]
    assert [e["event_id"] for e in events] == [e["event_id"] for e in expected]
    assert [e["version"] for e in events] == list(range(1, len(expected) + 1))
    assert events[0]["type"] == "patient_registered"
    assert events[-1]["type"] == "death"
    assert {e["recorded_by"] for e in events} == {"nurse.a"}
    assert {e["source"] for e in events} == {"cli"}


def test_demo_is_idempotent_and_prints_the_projections(run: Cli) -> None:
    first = run("demo")
    assert f"{CASE_REPORT_PATIENT}: 27 new events recorded" in first.stdout
    for text in ("cT4N2M1", "IVB", "decreasing", "4 → 0 per 7.5 mL", "2 years 3 months"):
        assert text in first.stdout
    again = run.json("demo")
    assert {r["new_events"] for r in again["recorded"]} == {0}
    assert again["patient_id"] == CASE_REPORT_PATIENT
    assert again["stage"]["current"]["tnm"] == "cT4N2M1"
    assert again["ctc"]["trend"] == "decreasing"
    assert again["survival"]["display"] == "2 years 3 months"
    assert len(again["history"]) == 27


def test_init_says_where_the_ledger_is(sqlite_run: Cli) -> None:
    result = sqlite_run("init")
    assert str(sqlite_run.config.sqlite_path) in result.stdout
    assert "0 events" in result.stdout


# -- record: every type via options ------------------------------------------------------------

EVERY_TYPE: list[tuple[str, list[str], dict[str, Any]]] = [
    ("diagnosis", ["--on", "2016-05-09", "--histology", "squamous_cell_carcinoma", "--grade",
     "G3", "--tumor-location", "middle", "--basis", "histology", "--method", "gastroscopy"],
     {"type": "diagnosis_confirmed", "tumor_location": "middle", "method": "gastroscopy"}),
    ("biopsy", ["--on", "2016-05-31", "--site", "right neck", "--method", "needle",
     "--guidance", "ultrasound", "--histology", "squamous_cell_carcinoma", "--grade", "G3",
     "--finding", "metastatic SCC"],
     {"type": "biopsy", "method": "needle", "guidance": "ultrasound"}),
    ("imaging", ["--on", "2016-05", "--estimated", "--modality", "contrast_ultrasound",
     "--region", "liver", "--finding", "mass", "--lesion", "liver-1:liver, right lobe:38x35x26",
     "--lesion", "liver-2:liver: segment 4:12:new"],
     {"type": "imaging", "date_estimated": True, "lesions": [
         {"lesion_id": "liver-1", "site": "liver, right lobe", "dimensions_mm": [38, 35, 26],
          "new": False},
         {"lesion_id": "liver-2", "site": "liver: segment 4", "dimensions_mm": [12],
          "new": True}]}),
    ("staging", ["--on", "2016-05-31", "--t", "T4", "--n", "N2", "--m", "M1", "--context", "c",
     "--system", "AJCC8"],
     {"type": "staging", "t": "T4", "n": "N2", "m": "M1", "stage_group": "IVB"}),
    ("chemotherapy", ["--on", "2016-06", "--regimen", "TP", "--agent", "paclitaxel", "--agent",
     "cisplatin", "--courses", "2", "--intent", "palliative", "--ended", "2016-07"],
     {"type": "chemotherapy", "agents": ["paclitaxel", "cisplatin"], "courses": 2}),
    ("radiotherapy", ["--on", "2016-07-01", "--target", "esophagus", "--dose-gy", "50.4",
     "--fractions", "28", "--intent", "palliative"],
     {"type": "radiotherapy", "dose_gy": 50.4, "fractions": 28}),
    ("ablation", ["--on", "2016-10", "--modality", "radiofrequency", "--site", "liver",
     "--target-lesion", "liver-1"],
     {"type": "ablation", "target_lesion_id": "liver-1"}),
    ("surgery", ["--on", "2016-11-02", "--procedure", "stent", "--intent", "palliative"],
     {"type": "surgery", "procedure": "stent"}),
    ("therapy_declined", ["--on", "2016-12-30", "--scope", "all_antitumor", "--reason",
     "patient preference"],
     {"type": "therapy_declined", "scope": "all_antitumor", "reason": "patient preference"}),
    ("ctc", ["--on", "2016-08-30", "--count", "4", "--volume", "7.5", "--assay", "CellRich",
     "--sample-id", "S-1", "--note", "first draw"],
     {"type": "ctc_count", "count": 4, "blood_volume_ml": 7.5, "note": "first draw"}),
    ("follow-up", ["--on", "2017-10-10", "--status", "alive"],
     {"type": "follow_up", "status": "alive"}),
    ("death", ["--on", "2018-08", "--cause", "cancer"], {"type": "death", "cause": "cancer"}),
]  # fmt: skip


def test_record_every_event_type_from_options(run: Cli) -> None:
    run("record", "P1", "patient_registered", "--on", "2016-04-26", "--sex", "male",
        "--birth-year", "1940", "--primary-site", "esophagus")  # fmt: skip
    for alias, args, expected in EVERY_TYPE:
        receipt = run.json("record", "P1", alias, *args)
        assert receipt["created"] is True
        stored = history(run)[-1]
        assert stored["version"] == receipt["version"]
        assert stored["event_id"] == receipt["event_id"]
        assert stored["hash"] == receipt["hash"]
        assert {k: stored[k] for k in expected} == expected, alias
    assert {e["type"] for e in history(run)} == set(CLINICAL_TYPES)


def test_every_field_of_every_type_has_an_option() -> None:
    fields = {option.field for option in BODY_OPTIONS}
    for name in CLINICAL_TYPES:
        own = set(ev.EVENT_TYPES[name].__struct_fields__) - ENVELOPE_FIELDS
        assert own <= fields, f"{name}: no option for {own - fields}"


def test_record_prints_a_receipt_line(run: Cli) -> None:
    register(run)
    result = run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")
    assert "recorded: ctc_count for P1 as version 2" in result.stdout
    assert history(run)[-1]["hash"] in result.stdout


def test_record_with_the_same_event_id_is_a_no_op_and_a_different_body_a_conflict(
    run: Cli,
) -> None:
    register(run)
    args = ["record", "P1", "ctc", "--on", "2016-08-30", "--count", "4", "--event-id",
            "5e27222f-f328-5173-ac64-7a3c91c9f021"]  # fmt: skip
    first = run.json(*args)
    again = run.json(*args)
    assert again["created"] is False
    assert again["version"] == first["version"] == 2
    clash = run(*args[:-3], "5", *args[-2:], code=4)
    assert "different body" in error_line(clash)
    assert len(history(run)) == 2


# -- exit codes --------------------------------------------------------------------------------


def test_validation_error_exits_2_naming_the_field(run: Cli) -> None:
    register(run)
    result = run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "-1", code=2)
    assert "count" in error_line(result)
    result = run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "1", "--t", "T4", code=2)
    assert "`t`" in error_line(result)
    result = run("record", "P1", "ctc", "--on", "30/08/2016", "--count", "1", code=2)
    assert "occurred" in error_line(result)
    assert result.stdout == ""
    assert len(history(run)) == 1


def test_usage_errors_exit_2(run: Cli) -> None:
    register(run)
    assert "--on" in error_line(run("record", "P1", "ctc", "--count", "1", code=2))
    assert "not an event type" in error_line(run("record", "P1", "bogus", "--on", "2016", code=2))
    bad_lesion = run("record", "P1", "imaging", "--on", "2016", "--modality", "ct", "--region",
                     "liver", "--lesion", "liver-1:38", code=2)  # fmt: skip
    assert "--lesion" in error_line(bad_lesion)
    assert "--as-of" in error_line(run("history", "P1", "--as-of", "yesterday", code=2))


def test_unknown_patient_exits_3(run: Cli) -> None:
    if not run.config.is_postgres:
        result = run("stage", "NOPE", code=3)
        assert error_line(result).startswith("Error: no ledger at ")
        assert run.config.sqlite_path and not os.path.exists(run.config.sqlite_path)
    run("init")
    result = run("stage", "NOPE", code=3)
    assert error_line(result) == "Error: patient NOPE is not registered"
    run("record", "NOPE", "ctc", "--on", "2016-08-30", "--count", "1", code=3)
    run("history", "NOPE", "--json", code=3)


def test_duplicate_registration_exits_4(run: Cli) -> None:
    register(run)
    result = run("patient", "register", "P1", "--sex", "female", "--on", "2016-01-01", code=4)
    assert "already registered" in error_line(result)


def test_stale_expected_version_exits_4(run: Cli) -> None:
    register(run)
    run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "1", "--expect-version", "1")
    result = run("record", "P1", "ctc", "--on", "2016-09-30", "--count", "1",
                 "--expect-version", "1", code=4)  # fmt: skip
    assert "expected 1" in error_line(result)


def test_rule_violations_exit_5(run: Cli) -> None:
    register(run, "P1", "--birth-year", "1940")
    future = run("record", "P1", "ctc", "--on", "2999-01-01", "--count", "1", code=5)
    assert "future" in error_line(future) and "occurred" in error_line(future)
    staging = run("record", "P1", "staging", "--on", "2016-05-31", "--t", "T4", "--n", "N2",
                  "--m", "M1", code=5)  # fmt: skip
    assert "diagnosis_confirmed" in error_line(staging)
    run("record", "P1", "ctc", "--on", "1930", "--count", "1", code=5)


def test_an_unexpected_error_is_one_line_and_exits_1(
    run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(run)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("projections.root.OncoLedger.read", boom)
    result = run("stage", "P1", code=1)
    assert result.stderr.strip() == "Error: unexpected RuntimeError: disk on fire"


# -- reads as JSON -----------------------------------------------------------------------------


def test_every_read_command_prints_one_json_document(run: Cli) -> None:
    run("demo", "--quiet")
    pid = CASE_REPORT_PATIENT
    timeline = run.json("timeline", pid)
    assert timeline["patient_id"] == pid and len(timeline["events"]) == 27
    stage = run.json("stage", pid)
    assert [a["tnm"] for a in stage["history"]] == ["cT4N2M1"] * 4
    assert stage["trend"] == "unchanged"
    ctc = run.json("ctc", pid)
    assert [d["count"] for d in ctc["draws"]] == [4, 2, 0]
    assert ctc["concordance"]["status"] == "discordant"
    strict = run.json("ctc", pid, "--rule", "ge3")
    assert strict["rule"] == "ge3"
    assert [d["positive"] for d in strict["draws"]] == [True, False, False]
    assert run.json("response", pid)["lesions"][0]["locally_treated"] is True
    survival = run.json("survival", pid)
    assert (survival["status"], survival["os_days"]) == ("dead", 828)
    steps = run.json("replay", pid)
    assert [s["version"] for s in steps] == list(range(1, 28))
    assert steps[-1]["survival_status"] == "dead"
    assert "ge9" in error_line(run("ctc", pid, "--rule", "ge9", "--json", code=2))


def test_human_output_of_the_views(run: Cli) -> None:
    run("demo", "--quiet")
    pid = CASE_REPORT_PATIENT
    assert "trend unchanged" in run("stage", pid).stdout
    assert "concordance: discordant" in run("ctc", pid).stdout
    assert "current category: SD" in run("response", pid).stdout
    assert "2 years 3 months" in run("survival", pid).stdout
    assert "Declined all antitumor therapy" in run("timeline", pid).stdout
    assert "death" in run("replay", pid).stdout
    assert "3b93ced4-bc8a-5e9d-8806-de47340d4470" in run("history", pid).stdout


def test_patient_show(run: Cli) -> None:
    register(run)
    diagnose(run)
    row = run.json("patient", "show", "P1")
    assert (row["patient_id"], row["sex"], row["version"]) == ("P1", "male", 2)
    assert row["histology"] == "squamous_cell_carcinoma"
    assert "stream version 2" in run("patient", "show", "P1").stdout


def test_patient_show_of_an_unknown_patient_exits_3(run: Cli) -> None:
    run("init")
    run("patient", "show", "NOPE", code=3)


def test_patient_list_filters_sorts_and_pages(run: Cli) -> None:
    run("demo", "--quiet")
    page = run.json("patient", "list")
    assert page["total"] == 3
    assert [p["patient_id"] for p in page["patients"]] == sorted(
        p["patient_id"] for p in page["patients"]
    )
    decreasing = run.json("patient", "list", "--ctc-trend", "decreasing", "--status", "dead")
    assert [p["patient_id"] for p in decreasing["patients"]] == [CASE_REPORT_PATIENT]
    either = run.json("patient", "list", "--stage-group", "IVB", "--stage-group", "II")
    assert either["total"] == 3
    longest = run.json("patient", "list", "--sort", "-os_months", "--limit", "1")
    assert len(longest["patients"]) == 1 and longest["next_cursor"]
    rest = run.json("patient", "list", "--sort", "-os_months", "--limit", "1", "--cursor",
                    longest["next_cursor"])  # fmt: skip
    assert rest["patients"][0]["patient_id"] != longest["patients"][0]["patient_id"]
    ranged = run.json("patient", "list", "--os-months-min", "20", "--events-max", "20")
    assert all(p["os_months"] >= 20 and p["events"] <= 20 for p in ranged["patients"])
    assert "3 shown of 3 matching" in run("patient", "list").stdout
    assert "sort" in error_line(run("patient", "list", "--sort", "nope", code=2))


# -- append and import ---------------------------------------------------------------------------


def test_append_from_stdin_stores_the_batch_atomically(run: Cli) -> None:
    register(run)
    batch = [
        {"type": "ctc_count", "occurred": "2016-08-30", "count": 4},
        {"type": "follow_up", "occurred": "2017-01", "status": "alive"},
    ]
    receipts = run.json("append", "P1", "-", input=json.dumps(batch))
    assert [r["version"] for r in receipts] == [2, 3]
    one = run.json("append", "P1", "-", input=json.dumps({"type": "death", "occurred": "2018"}))
    assert [r["version"] for r in one] == [4]
    bad = [
        {"type": "ctc_count", "occurred": "2016-09-30", "count": 2},
        {"type": "ctc_count", "occurred": "2016-10-30", "count": "many"},
    ]
    result = run("append", "P1", "-", input=json.dumps(bad), code=2)
    assert "count" in error_line(result)
    assert len(history(run)) == 4
    assert "not valid JSON" in error_line(run("append", "P1", "-", input="{oops", code=2))


def test_append_from_a_file(run: Cli, tmp_path: Any) -> None:
    register(run)
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"type": "ctc_count", "occurred": "2016-08-30", "count": 4}))
    result = run("append", "P1", str(path))
    assert "recorded: ctc_count for P1 as version 2" in result.stdout


def test_import_stores_valid_lines_and_reports_the_others(run: Cli, tmp_path: Any) -> None:
    lines = [
        {"type": "patient_registered", "patient_id": "Q1", "occurred": "2020-01-01", "sex": "f"},
        {"type": "patient_registered", "patient_id": "Q1", "occurred": "2020-01-01",
         "sex": "female"},
        {"type": "ctc_count", "patient_id": "Q1", "occurred": "2020-02-01", "count": 3},
        "not json",
        {"type": "ctc_count", "patient_id": "Q2", "occurred": "2020-02-01", "count": 3},
        {"type": "ctc_count", "patient_id": "Q1", "occurred": "2999-02-01", "count": 3},
        {"type": "patient_registered", "patient_id": "Q3", "occurred": "2020-01-01",
         "sex": "male"},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = run("import", str(path), code=2)
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == ["line 1", "line 4", "line 5", "line 6"]
    assert "sex" in reported[0]
    assert "future" in reported[3]
    assert "imported: 3 stored, 0 already recorded, 4 failed" in result.stdout
    assert error_line(result).startswith("Error: 4 line(s) failed")
    assert [e["type"] for e in history(run, "Q1")] == ["patient_registered", "ctc_count"]
    assert {e["source"] for e in history(run, "Q1")} == {"import"}
    assert len(history(run, "Q3")) == 1
    run("history", "Q2", code=3)


def test_import_from_stdin_all_good_exits_0(run: Cli) -> None:
    text = json.dumps(
        {"type": "patient_registered", "patient_id": "Q1", "occurred": "2020", "sex": "male"}
    )
    report = run.json("import", "-", input=text + "\n")
    assert report == {"stored": 1, "duplicates": 0, "failed": [], "server_fields_ignored": 0}


# -- corrections ---------------------------------------------------------------------------------


def test_amend_and_retract_then_the_timeline_shows_statuses(run: Cli) -> None:
    register(run)
    first = run.json("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")["event_id"]
    second = run.json("record", "P1", "ctc", "--on", "2016-12-30", "--count", "2")["event_id"]
    third = run.json("record", "P1", "ctc", "--on", "2017-10-10", "--count", "0")["event_id"]
    run("amend", "P1", first, "--reason", "transcription error", "--on", "2016-08-30",
        "--count", "5")  # fmt: skip
    run("amend", "P1", second, "--reason", "volume was 10 mL",
        "--body", '{"occurred": "2016-12-30", "count": 2, "blood_volume_ml": 10}')  # fmt: skip
    run("retract", "P1", third, "--reason", "sample of another patient")
    rows = {e["event_id"]: e for e in run.json("timeline", "P1")["events"]}
    assert rows[first]["status"] == "amended"
    assert rows[first]["event"]["count"] == 5
    assert rows[first]["corrections"][0]["reason"] == "transcription error"
    assert rows[second]["event"]["blood_volume_ml"] == 10
    assert rows[third]["status"] == "retracted"
    assert rows[third]["corrections"][0]["recorded_by"] == "nurse.a"
    assert [d["count"] for d in run.json("ctc", "P1")["draws"]] == [5, 2]
    types = [e["type"] for e in history(run)]
    assert types[-3:] == ["event_amended", "event_amended", "event_retracted"]
    human = run("timeline", "P1").stdout
    assert "retracted" in human and "sample of another patient" in human


def test_correction_errors(run: Cli) -> None:
    register(run)
    target = run.json("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")["event_id"]
    unknown = "00000000-0000-4000-8000-000000000000"
    run("retract", "P1", unknown, "--reason", "x", code=3)
    run("amend", "P1", unknown, "--reason", "x", "--on", "2016", "--count", "1", code=3)
    both = run("amend", "P1", target, "--reason", "x", "--body", "{}", "--count", "1", code=2)
    assert "either --body" in error_line(both)
    run("amend", "P1", target, "--reason", "x", code=2)
    wrong_type = run("amend", "P1", target, "--reason", "x", "--type", "death", "--on", "2016",
                     code=5)  # fmt: skip
    assert "keeps the target's type" in error_line(wrong_type)
    run("retract", "P1", target, "--reason", "entered in error")
    again = run("retract", "P1", target, "--reason", "again", code=5)
    assert "retracted" in error_line(again)


# -- time travel -------------------------------------------------------------------------------


def test_as_of_and_upto(run: Cli) -> None:
    register(run)
    diagnose(run)
    run("record", "P1", "staging", "--on", "2016-05-31", "--t", "T2", "--n", "N0", "--m", "M0")
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    run("record", "P1", "staging", "--on", "2016-12-30", "--t", "T4", "--n", "N2", "--m", "M1")
    naive_utc = between.replace(tzinfo=None).isoformat()
    assert len(history(run, "P1", "--as-of", naive_utc)) == 3
    assert len(history(run, "P1", "--as-of", between.isoformat())) == 3
    assert len(history(run, "P1", "--upto", "2")) == 2
    then = run.json("stage", "P1", "--as-of", naive_utc)
    assert [a["tnm"] for a in then["history"]] == ["cT2N0M0"]
    now = run.json("stage", "P1")
    assert now["current"]["tnm"] == "cT4N2M1" and now["trend"] == "worsened"
    assert run.json("stage", "P1", "--upto", "2")["history"] == []
    assert run.json("timeline", "P1", "--upto", "1")["events"][0]["type"] == "patient_registered"
    run("history", "P1", "--upto", "0", code=2)


# -- integrity, views --------------------------------------------------------------------------


def test_verify_intact(run: Cli) -> None:
    run("demo", "--quiet")
    report = run.json("verify")
    assert report["ok"] is True and report["events"] == 62 and report["patients"] == 3
    assert report["first_break"] is None
    assert "intact" in run("verify", CASE_REPORT_PATIENT).stdout
    run("verify", "NOPE", code=3)


def test_verify_reports_the_first_broken_event_and_exits_5(sqlite_run: Cli) -> None:
    register(sqlite_run)
    sqlite_run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")
    sqlite_run("record", "P1", "ctc", "--on", "2016-12-30", "--count", "2")
    db = sqlite3.connect(str(sqlite_run.config.sqlite_path))
    with db:
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE originator_id = 'P1' AND originator_version = 2"
        ).fetchone()
        tampered = bytes(state).replace(b'"count":4', b'"count":0')
        assert tampered != bytes(state)
        db.execute(
            "UPDATE stored_events SET state = ? "
            "WHERE originator_id = 'P1' AND originator_version = 2",
            (tampered,),
        )
    db.close()
    result = sqlite_run("verify", "--json", code=5)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["first_break"]["patient_id"] == "P1"
    assert report["first_break"]["version"] == 2
    assert "P1 version 2" in error_line(result)


def test_digest_json_changes_when_something_is_recorded(run: Cli) -> None:
    register(run)
    before = run.json("digest")
    assert len(before["sha256"]) == 64 and (before["patients"], before["events"]) == (1, 1)
    assert run.json("digest")["sha256"] == before["sha256"]
    run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")
    after = run.json("digest")
    assert after["sha256"] != before["sha256"] and after["events"] == 2
    assert after["sha256"] in run("digest").stdout


def test_projections_rebuild_and_status(run: Cli) -> None:
    run("demo", "--quiet")
    assert run.json("projections", "status") == {"position": 62, "head": 62, "lag": 0, "behind": 0}
    rebuilt = run.json("projections", "rebuild")
    assert rebuilt["applied"] == 62 and rebuilt["behind"] == 0
    assert "62 events" in run("projections", "rebuild").stdout
    assert "0 behind" in run("projections", "status").stdout
    assert run.json("patient", "list")["total"] == 3


def test_actor_option_is_recorded(run: Cli) -> None:
    run("--actor", "dr.li", "patient", "register", "P1", "--sex", "male", "--on", "2016")
    assert history(run)[0]["recorded_by"] == "dr.li"


# -- export, audit, access log -------------------------------------------------------------------


def test_export_verifies_offline_and_a_changed_export_exits_5(run: Cli, tmp_path: Any) -> None:
    run("demo", "--quiet")
    document = json.loads(run("export", CASE_REPORT_PATIENT).stdout)
    assert document["patient_id"] == CASE_REPORT_PATIENT and len(document["events"]) == 27
    good = tmp_path / "export.json"
    good.write_text(json.dumps(document))
    report = run.json("verify", "--file", str(good))
    assert report["ok"] is True and report["head_version"] == 27
    kept = document["chain_digest"]
    assert run.json("verify", "--file", str(good), "--digest", kept)["ok"] is True
    document["events"][11]["count"] = 40
    bad = tmp_path / "changed.json"
    bad.write_text(json.dumps(document))
    result = run("verify", "--file", str(bad), code=5)
    assert f"patient {CASE_REPORT_PATIENT} version 12" in error_line(result)
    stdin = run("verify", "--file", "-", "--json", input=json.dumps(document), code=5)
    assert json.loads(stdin.stdout)["first_break"]["version"] == 12
    run("verify", CASE_REPORT_PATIENT, "--file", str(good), code=2)
    run("export", "NOPE", code=3)


def test_audit_lists_who_recorded_what(run: Cli) -> None:
    register(run)
    target = run.json("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")["event_id"]
    run("--actor", "dr.li", "retract", "P1", target, "--reason", "wrong sample")
    page = run.json("audit", "P1")
    assert [e["type"] for e in page["entries"]] == [
        "patient_registered",
        "ctc_count",
        "event_retracted",
    ]
    corrections = run.json("audit", "--corrections")["entries"]
    assert [(e["recorded_by"], e["target_event_id"], e["reason"]) for e in corrections] == [
        ("dr.li", target, "wrong sample")
    ]
    assert run.json("audit", "--actor", "dr.li")["entries"] == corrections
    assert len(run.json("audit", "--type", "ctc_count")["entries"]) == 1
    first = run.json("audit", "--limit", "2")
    assert len(first["entries"]) == 2 and first["next_cursor"] is not None
    rest = run.json("audit", "--limit", "2", "--after", str(first["next_cursor"]))
    assert [e["type"] for e in rest["entries"]] == ["event_retracted"]


def test_clinical_reads_are_in_the_access_log(run: Cli) -> None:
    register(run)
    run("stage", "P1")
    run("--actor", "dr.li", "history", "P1", "--json")
    run("patient", "list", "--json")
    run("stage", "NOPE", code=3)
    entries = run.json("access-log")["entries"]
    assert [(e["actor"], e["channel"], e["resource"], e["patient_id"]) for e in entries] == [
        ("nurse.a", "cli", "stage", "P1"),
        ("dr.li", "cli", "history", "P1"),
        ("nurse.a", "cli", "patients", None),
    ]
    only = run.json("access-log", "P1", "--actor", "dr.li")["entries"]
    assert [e["resource"] for e in only] == ["history"]
    check = run.json("access-log", "--verify")
    assert check["ok"] is True and check["entries"] >= 4


def test_digest_as_of_recomputes_a_kept_digest(run: Cli) -> None:
    register(run)
    kept = run.json("digest")
    run("record", "P1", "ctc", "--on", "2016-08-30", "--count", "4")
    assert run.json("digest")["sha256"] != kept["sha256"]
    again = run.json("digest", "--as-of", kept["as_of"])
    assert again["sha256"] == kept["sha256"]
    assert "sha256 " in run("digest").stdout


def test_serve_and_token_are_commands(run: Cli) -> None:
    assert "--port" in run("serve", "--help").stdout
    run("token", "create", "reader.one", "--role", "reader")
    names = [t["name"] for t in run.json("token", "list")["tokens"]]
    assert names == ["reader.one"]
