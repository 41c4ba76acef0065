"""The cBioPortal study export, checked against cBioPortal's File-Formats document.

`check_study` below is written from docs/File-Formats.md (cBioPortal/cbioportal): the study
meta file and its required fields; clinical meta files (cancer_study_identifier,
genetic_alteration_type CLINICAL, datatype PATIENT_ATTRIBUTES / SAMPLE_ATTRIBUTES / TIMELINE,
data_filename of a file that exists; the sample file required); clinical data files with four
`#` rows (display names, descriptions, datatypes STRING/NUMBER/BOOLEAN, integer priorities)
above upper-case attribute names, PATIENT_ID (and SAMPLE_ID) present, ids of letters, digits,
points, underscores and hyphens, one row per patient / per sample, values of their datatype,
OS_STATUS `1:DECEASED` / `0:LIVING`; timeline files starting PATIENT_ID, START_DATE,
STOP_DATE, EVENT_TYPE with whole days, STOP_DATE blank or a day, numeric LAB_TEST results.
The expected values are computed here from the demo cohort's own event files.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from cli.main import cli
from domain.demo import CASE_REPORT_PATIENT
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.ledger.application import StoreConfig
from projections.cbioportal import export_study
from projections.root import OncoLedger

DEMO = Path(__file__).resolve().parents[2] / "domain" / "demo"
_ID = re.compile(r"^[A-Za-z0-9._-]+$")
_DATATYPES = {"STRING", "NUMBER", "BOOLEAN"}
_NULL = {"NA", ""}


# -- the structural checker (from cBioPortal's File-Formats document) ----------------------------


def _meta(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        assert sep, f"{path.name}: `{line}` is not `key: value`"
        assert key.strip() not in fields, f"{path.name}: {key} twice"
        fields[key.strip()] = value.strip()
    return fields


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _clinical(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    lines = _rows(path.read_text(encoding="utf-8"))
    assert len(lines) >= 5, f"{path.name}: needs 4 header rows and the attribute names"
    meta, names, data = lines[:4], lines[4], lines[5:]
    for row in meta:
        assert row[0].startswith("#"), f"{path.name}: header rows start with #"
        assert len(row) == len(names), f"{path.name}: header rows of different widths"
    display, description, datatypes, priorities = [[row[0][1:], *row[1:]] for row in meta]
    assert all(v.strip() for v in display + description), f"{path.name}: empty header cell"
    assert set(datatypes) <= _DATATYPES, f"{path.name}: datatypes {set(datatypes)}"
    assert all(re.fullmatch(r"-?\d+", p) and int(p) >= -1 for p in priorities)
    assert all(n == n.upper() and n for n in names), f"{path.name}: names must be upper case"
    assert len(set(names)) == len(names), f"{path.name}: repeated column"
    for column in required:
        assert column in names, f"{path.name}: {column} is required"
    records = []
    for number, row in enumerate(data, start=6):
        assert len(row) == len(names), f"{path.name}:{number}: {len(row)} cells"
        record = dict(zip(names, row, strict=True))
        for name, kind, value in zip(names, datatypes, row, strict=True):
            if value in _NULL:
                continue
            if kind == "NUMBER":
                assert _is_number(value), f"{path.name}:{number}: {name}={value!r}"
            if kind == "BOOLEAN":
                assert value in ("TRUE", "FALSE"), f"{path.name}:{number}: {name}={value!r}"
        for column in required:
            assert _ID.match(record[column]), f"{path.name}:{number}: {column} {record[column]!r}"
        records.append(record)
    return records


def check_study(folder: Path) -> dict[str, Any]:
    """Check a study folder; return its parsed patient, sample and timeline rows."""
    study = _meta(folder / "meta_study.txt")
    for key in ("type_of_cancer", "cancer_study_identifier", "name", "description"):
        assert study.get(key), f"meta_study.txt: {key} is required"
    study_id = study["cancer_study_identifier"]
    by_datatype: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.glob("meta_*.txt")):
        if path.name == "meta_study.txt":
            continue
        fields = _meta(path)
        for key in (
            "cancer_study_identifier",
            "genetic_alteration_type",
            "datatype",
            "data_filename",
        ):
            assert fields.get(key), f"{path.name}: {key} is required"
        assert fields["cancer_study_identifier"] == study_id
        assert fields["genetic_alteration_type"] == "CLINICAL"
        assert fields["datatype"] in ("PATIENT_ATTRIBUTES", "SAMPLE_ATTRIBUTES", "TIMELINE")
        assert (folder / fields["data_filename"]).is_file(), f"{path.name}: no data file"
        by_datatype.setdefault(fields["datatype"], []).append(fields)
    assert len(by_datatype.get("SAMPLE_ATTRIBUTES", [])) == 1, "the sample file is required"
    samples = _clinical(
        folder / by_datatype["SAMPLE_ATTRIBUTES"][0]["data_filename"], ("PATIENT_ID", "SAMPLE_ID")
    )
    patients = _clinical(
        folder / by_datatype["PATIENT_ATTRIBUTES"][0]["data_filename"], ("PATIENT_ID",)
    )
    patient_ids = [p["PATIENT_ID"] for p in patients]
    sample_ids = [s["SAMPLE_ID"] for s in samples]
    assert len(set(patient_ids)) == len(patient_ids), "one row per patient"
    assert len(set(sample_ids)) == len(sample_ids), "one row per sample"
    assert {s["PATIENT_ID"] for s in samples} == set(patient_ids), "every patient has samples"
    assert all(len(s) <= 63 for s in sample_ids)
    for patient in patients:
        assert patient.get("OS_STATUS", "NA") in ("1:DECEASED", "0:LIVING", "NA")
    timelines: dict[str, list[dict[str, str]]] = {}
    for fields in by_datatype.get("TIMELINE", []):
        lines = _rows((folder / fields["data_filename"]).read_text(encoding="utf-8"))
        header, data = lines[0], lines[1:]
        assert header[:4] == ["PATIENT_ID", "START_DATE", "STOP_DATE", "EVENT_TYPE"]
        records = []
        for number, row in enumerate(data, start=2):
            assert len(row) == len(header), f"{fields['data_filename']}:{number}"
            record = dict(zip(header, row, strict=True))
            assert record["PATIENT_ID"] in patient_ids
            assert re.fullmatch(r"-?\d+", record["START_DATE"])
            if record["STOP_DATE"]:
                assert re.fullmatch(r"-?\d+", record["STOP_DATE"])
                assert int(record["STOP_DATE"]) >= int(record["START_DATE"])
            assert record["EVENT_TYPE"]
            if record["EVENT_TYPE"] == "LAB_TEST":
                assert _is_number(record["RESULT"]), "lab results are numeric"
            if record["EVENT_TYPE"] == "SPECIMEN":
                assert record["SAMPLE_ID"] in sample_ids
            records.append(record)
        timelines[fields["data_filename"]] = records
    return {"study": study, "patients": patients, "samples": samples, "timelines": timelines}


# -- the demo cohort ---------------------------------------------------------------------------


def _demo_events(patient_id: str) -> list[dict[str, Any]]:
    for path in DEMO.glob("*.jsonl"):
        events = [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line]
        if events and events[0]["patient_id"] == patient_id:
            return events
    raise AssertionError(patient_id)


def _day(text: str) -> date:
    """Imputation written out independently: YYYY-MM → the 15th, YYYY → 1 July."""
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 3:
        return date(*parts)
    if len(parts) == 2:
        return date(parts[0], parts[1], 15)
    return date(parts[0], 7, 1)


def _export(config: StoreConfig, folder: Path, **kwargs: Any) -> Any:
    with OncoLedger(config) as ledger:
        ledger.record_demo(actor="nurse")
        return export_study(ledger, folder, **kwargs)


def test_demo_cohort_export_passes_the_structural_check(store: StoreConfig, tmp_path: Path) -> None:
    report = _export(store, tmp_path / "study")
    parsed = check_study(tmp_path / "study")
    assert parsed["study"]["type_of_cancer"] == "esca"
    assert parsed["study"]["cancer_study_identifier"] == "oncoledger"
    assert report.patients == len(parsed["patients"]) == 3
    case = next(p for p in parsed["patients"] if p["PATIENT_ID"] == CASE_REPORT_PATIENT)
    events = _demo_events(CASE_REPORT_PATIENT)
    diagnosis = next(e for e in events if e["type"] == "diagnosis_confirmed")["occurred"]
    death = next(e for e in events if e["type"] == "death")["occurred"]
    os_days = (_day(death) - _day(diagnosis)).days
    assert case["OS_STATUS"] == "1:DECEASED"
    assert float(case["OS_MONTHS"]) == round(os_days / 30.4375, 1)
    assert case["SEX"] == "Male"
    assert case["HISTOLOGY"] == "Squamous cell carcinoma"
    assert case["STAGE_GROUP"] == "IVB" and case["STAGE_TNM"] == "cT4N2M1"
    assert case["CTC_TREND"] == "decreasing"
    assert case["CONCORDANCE"] == "discordant"
    censored = next(p for p in parsed["patients"] if p["PATIENT_ID"] == "DEMO-ESCC-003")
    assert censored["OS_STATUS"] == "0:LIVING"
    # Samples: one per biopsy, numbered in clinical order.
    biopsies = [e for e in events if e["type"] == "biopsy"]
    case_samples = [s for s in parsed["samples"] if s["PATIENT_ID"] == CASE_REPORT_PATIENT]
    assert [s["SAMPLE_ID"] for s in case_samples] == [
        f"{CASE_REPORT_PATIENT}-S{n}" for n in range(1, len(biopsies) + 1)
    ]
    assert [s["SPECIMEN_SITE"] for s in case_samples] == [b["site"] for b in biopsies]
    assert {s["ONCOTREE_CODE"] for s in case_samples} == {"ESCC"}
    # CTC as a numeric lab test, days counted from diagnosis.
    labs = [
        r
        for r in parsed["timelines"]["data_timeline_lab_test.txt"]
        if r["PATIENT_ID"] == CASE_REPORT_PATIENT
    ]
    draws = [e for e in events if e["type"] == "ctc_count"]
    assert [float(r["RESULT"]) for r in labs] == [4, 2, 0]
    assert [int(r["START_DATE"]) for r in labs] == [
        (_day(d["occurred"]) - _day(diagnosis)).days for d in draws
    ]
    assert {r["TEST"] for r in labs} == {"CTC"}
    status = parsed["timelines"]["data_timeline_status.txt"]
    staged = [r for r in status if r["PATIENT_ID"] == CASE_REPORT_PATIENT and r["TNM"]]
    assert [r["STAGE_GROUP"] for r in staged] == ["IVB"] * 4
    deaths = [
        r for r in status if r["PATIENT_ID"] == CASE_REPORT_PATIENT and r["STATUS"] == "DECEASED"
    ]
    assert [int(r["START_DATE"]) for r in deaths] == [os_days]
    assert deaths[0]["DATE_APPROXIMATE"] == "yes"  # died in 2018-08: the day is imputed
    treatments = [
        r
        for r in parsed["timelines"]["data_timeline_treatment.txt"]
        if r["PATIENT_ID"] == CASE_REPORT_PATIENT
    ]
    assert {r["AGENT"] for r in treatments} == {"paclitaxel", "cisplatin"}
    surgery = parsed["timelines"]["data_timeline_surgery.txt"]
    assert [r["PROCEDURE"] for r in surgery] == ["Radiofrequency ablation"]


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    "breakage",
    [
        "fifth header row missing",
        "text in a NUMBER column",
        "a patient twice",
        "a lower-case attribute name",
        "a missing data file",
        "timeline columns out of order",
        "a non-numeric lab result",
        "meta_study without a name",
    ],
)
def test_the_checker_rejects_a_broken_study(tmp_path: Path, breakage: str) -> None:
    folder = tmp_path / "study"
    _export(StoreConfig(sqlite_path=str(tmp_path / "ledger.db")), folder)
    check_study(folder)  # intact, it passes
    patients = folder / "data_clinical_patient.txt"
    if breakage == "fifth header row missing":
        lines = patients.read_text(encoding="utf-8").splitlines(keepends=True)
        patients.write_text("".join(lines[:3] + lines[4:]), encoding="utf-8")
    elif breakage == "text in a NUMBER column":
        _replace_in(patients, "\t1:DECEASED\t27.2\t", "\t1:DECEASED\tlong\t")
    elif breakage == "a patient twice":
        lines = patients.read_text(encoding="utf-8").splitlines(keepends=True)
        patients.write_text("".join([*lines, lines[-1]]), encoding="utf-8")
    elif breakage == "a lower-case attribute name":
        _replace_in(patients, "\tOS_MONTHS\t", "\tos_months\t")
    elif breakage == "a missing data file":
        (folder / "data_timeline_surgery.txt").unlink()
    elif breakage == "timeline columns out of order":
        _replace_in(
            folder / "data_timeline_lab_test.txt", "START_DATE\tSTOP_DATE", "STOP_DATE\tSTART_DATE"
        )
    elif breakage == "a non-numeric lab result":
        _replace_in(folder / "data_timeline_lab_test.txt", "\tCTC\t4\t", "\tCTC\tfour\t")
    elif breakage == "meta_study without a name":
        _replace_in(folder / "meta_study.txt", "name: OncoLedger cohort\n", "")
    with pytest.raises(AssertionError):
        check_study(folder)


def _ledger_with(tmp_path: Path, events: list[dict[str, Any]]) -> StoreConfig:
    config = StoreConfig(sqlite_path=str(tmp_path / "ledger.db"))
    with OncoLedger(config) as ledger:
        ledger.append("X1", events, actor="nurse", source="cli")
    return config


def test_partial_dates_use_the_survival_imputation_and_corrections_count(
    tmp_path: Path,
) -> None:
    config = _ledger_with(
        tmp_path,
        [
            {
                "type": "patient_registered",
                "occurred": "2019-11-02",
                "sex": "female",
                "birth_year": 1950,
            },
            {"type": "diagnosis_confirmed", "occurred": "2020-03", "histology": "adenocarcinoma"},
            {"type": "ctc_count", "occurred": "2020", "count": 6},
            {"type": "ctc_count", "occurred": "2020-09-01", "count": 9, "blood_volume_ml": 10},
            {"type": "ctc_count", "occurred": "2020-10-01", "count": 1},
        ],
    )
    with OncoLedger(config) as ledger:
        ids = [e.event_id for e in ledger.history("X1") if e.event_id is not None]
        ledger.amend(
            "X1",
            ids[3],
            {"type": "ctc_count", "occurred": "2020-09-01", "count": 3, "blood_volume_ml": 10},
            reason="typo",
            actor="dm",
            source="cli",
        )
        ledger.retract("X1", ids[4], reason="wrong patient", actor="dm", source="cli")
        export_study(ledger, tmp_path / "study")
    parsed = check_study(tmp_path / "study")
    labs = parsed["timelines"]["data_timeline_lab_test.txt"]
    zero = date(2020, 3, 15)
    assert [(int(r["START_DATE"]), float(r["RESULT"]), r["CTC_COUNT"]) for r in labs] == [
        ((date(2020, 7, 1) - zero).days, 6.0, "6"),
        ((date(2020, 9, 1) - zero).days, 2.25, "3"),  # the amendment, per 7.5 mL
    ]
    assert [r["DATE_APPROXIMATE"] for r in labs] == ["yes", "no"]
    (patient,) = parsed["patients"]
    assert patient["AGE"] == "70"
    assert patient["TIMELINE_ZERO"] == "diagnosis"
    # No biopsy: one sample stands for the patient.
    (sample,) = parsed["samples"]
    assert sample["SAMPLE_ID"] == "X1-S1" and sample["SAMPLE_SOURCE"] == "patient"
    assert sample["ONCOTREE_CODE"] == "ESCA"
    assert "data_timeline_specimen.txt" not in parsed["timelines"]


def test_cohort_filters_select_the_patients(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "demo", "--quiet"]).exit_code == 0
    result = runner.invoke(
        cli,
        [
            "--db",
            db,
            "cbioportal",
            "export",
            str(tmp_path / "s"),
            "--ctc-trend",
            "increasing",
            "--study-id",
            "esca_ctc",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = msgspec.json.decode(result.output)
    assert report["patient_ids"] == ["DEMO-EAC-002"]
    parsed = check_study(tmp_path / "s")
    assert [p["PATIENT_ID"] for p in parsed["patients"]] == ["DEMO-EAC-002"]
    assert parsed["study"]["cancer_study_identifier"] == "esca_ctc"
    log = runner.invoke(cli, ["--db", db, "access-log", "--json"])
    entries = msgspec.json.decode(log.output)["entries"]
    assert [(e["resource"], e["patient_id"]) for e in entries if e["resource"] == "cbioportal"] == [
        ("cbioportal", "DEMO-EAC-002")
    ]


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "demo", "--quiet"]).exit_code == 0

    def export(*args: str) -> Any:
        return runner.invoke(cli, ["--db", db, "cbioportal", "export", *args])

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = export(str(busy))
    assert result.exit_code == 4 and "not empty" in result.output
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    result = export(str(tmp_path / "a"), "--study-id", "Bad-Id")
    assert result.exit_code == 2 and "study_id" in result.output
    assert not (tmp_path / "a").exists()

    result = export(str(tmp_path / "b"), "--no-such-filter", "x")
    assert result.exit_code == 2 and "no-such-filter" in result.output
    assert not (tmp_path / "b").exists()

    result = export(str(tmp_path / "c"), "--stage-group", "IIIC")
    assert result.exit_code == 3 and "no patient matches" in result.output
    assert not (tmp_path / "c").exists()

    result = export(str(tmp_path / "missing" / "d"))
    assert result.exit_code == 3 and "does not exist" in result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(str(empty)).exit_code == 0
    check_study(empty)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left"


def test_service_errors_name_the_field(tmp_path: Path) -> None:
    config = StoreConfig(sqlite_path=str(tmp_path / "ledger.db"))
    with OncoLedger(config) as ledger:
        ledger.record_demo(actor="nurse")
        with pytest.raises(ValidationFailed) as bad_id:
            export_study(ledger, tmp_path / "x", study_id="")
        assert bad_id.value.field == "study_id"
        with pytest.raises(NotFound):
            export_study(ledger, tmp_path / "x", filters={"sex": ["other"]})
        with pytest.raises(ValidationFailed) as unknown:
            export_study(ledger, tmp_path / "x", filters={"colour": "red"})
        assert unknown.value.field == "colour" and unknown.value.rule == "filter"
        (tmp_path / "file").write_text("")
        with pytest.raises(Conflict):
            export_study(ledger, tmp_path / "file")
        long_id = "P" * 62
        ledger.register(long_id, {"sex": "male", "occurred": "2020-01-01"}, actor="n", source="cli")
        with pytest.raises(ValidationFailed) as too_long:
            export_study(ledger, tmp_path / "y")
        assert too_long.value.rule == "sample_id_length" and long_id in too_long.value.message
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


VALIDATOR = os.environ.get("CBIOPORTAL_VALIDATOR")


@pytest.mark.skipif(
    not VALIDATOR,
    reason="set CBIOPORTAL_VALIDATOR to cBioPortal's scripts/importer/validateData.py "
    "(cBioPortal/cbioportal-core) to also run cBioPortal's own validator offline",
)
def test_cbioportal_own_validator_accepts_the_demo_study(tmp_path: Path) -> None:
    _export(StoreConfig(sqlite_path=str(tmp_path / "ledger.db")), tmp_path / "study")
    python = os.environ.get("CBIOPORTAL_VALIDATOR_PYTHON", sys.executable)
    result = subprocess.run(
        [python, str(VALIDATOR), "-s", str(tmp_path / "study"), "-n"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(str(VALIDATOR)).parent,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 3), output  # 3: succeeded with warnings
    assert "ERROR" not in output, output
