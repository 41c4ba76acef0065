"""The FHIR R4 / mCODE STU4 export (issue 16): structure, codes, corrections, time travel.

Structure is checked by a validator no one here wrote: the `fhir.resources` package's R4B
models (the closest to R4 4.0.1 on PyPI). What those models do not enforce, the profile URLs,
LOINC / SNOMED / AJCC codes, fixed values and units of mCODE STU4 (HL7/fhir-mCODE-ig 4.0.0,
input/fsh), is checked by the separate tests below against the IG's own text.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fhir.resources.R4B.bundle import Bundle
from helpers import Cli
from litestar.testing import TestClient
from pydantic import ValidationError

from api.app import create_app
from domain.demo import CASE_REPORT_PATIENT, demo_patients
from domain.errors import NotFound
from domain.ledger.application import StoreConfig
from projections.fhir import export_fhir
from projections.root import OncoLedger

MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
AJCC = "http://cancerstaging.org"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
AJCC8 = "897275008"  # VS_Staging_TNM.fsh: AJCC Cancer Staging Manual, 8th edition


def validate(bundle: dict[str, Any]) -> Bundle:
    """Structural validation by fhir.resources' R4B models (raises pydantic's ValidationError)."""
    return Bundle.model_validate(bundle)


def resources(bundle: dict[str, Any], profile: str | None = None) -> list[dict[str, Any]]:
    found = [entry["resource"] for entry in bundle["entry"]]
    if profile is None:
        return found
    return [r for r in found if MCODE + profile in r["meta"].get("profile", [])]


def codes(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c["system"] == system]


def resolve(bundle: dict[str, Any], reference: dict[str, str]) -> dict[str, Any]:
    by_url = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    resource: dict[str, Any] = by_url[reference["reference"]]
    return resource


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


@pytest.fixture
def system(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as ledger:
        yield ledger


@pytest.fixture
def case_report(system: OncoLedger) -> dict[str, Any]:
    system.record_demo(actor="nurse.a")
    bundle = export_fhir(system, CASE_REPORT_PATIENT)
    validate(bundle)
    return bundle


def record(system: OncoLedger, patient_id: str, *bodies: dict[str, Any]) -> list[str]:
    receipts = system.append(patient_id, list(bodies), actor="nurse.a", source="cli")
    return [str(r.event_id) for r in receipts]


def register(system: OncoLedger, patient_id: str = "P1", **fields: Any) -> None:
    body = {"sex": "female", "birth_year": 1950, "occurred": "2016-01-10"} | fields
    system.register(patient_id, body, actor="nurse.a", source="cli")


def diagnosis(**fields: Any) -> dict[str, Any]:
    return {
        "type": "diagnosis_confirmed",
        "occurred": "2016-02-01",
        "histology": "squamous_cell_carcinoma",
    } | fields


def staging(occurred: str = "2016-02-10", **fields: Any) -> dict[str, Any]:
    return {"type": "staging", "occurred": occurred, "t": "T2", "n": "N0", "m": "M0"} | fields


def ctc(occurred: str, count: int, **fields: Any) -> dict[str, Any]:
    return {"type": "ctc_count", "occurred": occurred, "count": count} | fields


# -- the case report's patient (issue 16, "Done when") ------------------------------------------


def test_case_report_bundle_is_an_mcode_collection(case_report: dict[str, Any]) -> None:
    assert case_report["resourceType"] == "Bundle"
    assert case_report["type"] == "collection"
    assert case_report["meta"]["profile"] == [MCODE + "mcode-patient-bundle"]
    # Every reference resolves inside the Bundle, every fullUrl is unique.
    urls = [entry["fullUrl"] for entry in case_report["entry"]]
    assert len(urls) == len(set(urls))
    for reference in references(case_report["entry"]):
        assert reference in urls, reference


def test_case_report_patient_is_a_pseudonymous_cancer_patient_who_died_2018_08(
    case_report: dict[str, Any],
) -> None:
    (patient,) = [r for r in resources(case_report) if r["resourceType"] == "Patient"]
    assert patient["meta"]["profile"] == [MCODE + "mcode-cancer-patient"]
    assert [i["value"] for i in patient["identifier"]] == [CASE_REPORT_PATIENT]
    (name,) = patient["name"]
    assert "family" not in name and "given" not in name
    assert name["extension"][0]["valueCode"] == "masked"  # US Core us-core-6
    assert patient["gender"] == "male"
    assert patient["deceasedDateTime"] == "2018-08"  # partial stays partial


def test_case_report_primary_cancer_condition_is_esophageal_scc(
    case_report: dict[str, Any],
) -> None:
    (condition,) = resources(case_report, "mcode-primary-cancer-condition")
    assert condition["resourceType"] == "Condition"
    assert "276804009" in codes(
        condition["code"], SCT
    )  # SCC of esophagus (PrimaryCancerDisorderVS)
    (histology,) = condition["extension"]
    assert histology["url"] == MCODE + "mcode-histology-morphology-behavior"
    assert codes(histology["valueCodeableConcept"], ICDO3) == ["8070/3"]
    assert codes(condition["bodySite"][0], ICDO3) == ["C15.9"]  # location not given
    assert codes(
        condition["verificationStatus"], condition["verificationStatus"]["coding"][0]["system"]
    ) == ["confirmed"]
    assert condition["onsetDateTime"] == "2016-05-09"
    # stage.summary / assessment point at the latest TNM stage group.
    stage = resolve(case_report, condition["stage"][0]["assessment"][0])
    assert stage["effectiveDateTime"] == "2017-10-10"
    (grade,) = resources(case_report, "mcode-histologic-grade")
    assert codes(grade["code"], "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl") == ["C18000"]
    assert codes(grade["valueCodeableConcept"], SCT) == ["1155707008"]  # G3: high grade
    assert grade["category"][0]["coding"][0]["code"] == "laboratory"


def test_case_report_has_four_clinical_tnm_stage_groups_ct4n2m1_ivb_ajcc8(
    case_report: dict[str, Any],
) -> None:
    groups = resources(case_report, "mcode-tnm-stage-group")
    assert [g["effectiveDateTime"] for g in groups] == [
        "2016-05-31",
        "2016-08-30",
        "2016-12-30",
        "2017-10-10",
    ]
    (condition,) = resources(case_report, "mcode-primary-cancer-condition")
    for group in groups:
        assert codes(group["code"], SCT) == ["399537006"]  # Clinical TNM stage grouping
        assert codes(group["method"], SCT) == [AJCC8]
        assert group["valueCodeableConcept"]["text"] == "IVB"
        assert codes(group["valueCodeableConcept"], AJCC) == ["4B"]
        assert resolve(case_report, group["focus"][0]) is condition
        members = [resolve(case_report, ref) for ref in group["hasMember"]]
        profiles = [m["meta"]["profile"][0].removeprefix(MCODE) for m in members]
        assert profiles == [
            "mcode-tnm-primary-tumor-category",
            "mcode-tnm-regional-nodes-category",
            "mcode-tnm-distant-metastases-category",
        ]
        # cT / cN / cM category codes (TNM*StagingTypeVS) and their AJCC values.
        assert [codes(m["code"], SCT)[0] for m in members] == [
            "399504009",
            "399534004",
            "399387003",
        ]
        assert [codes(m["valueCodeableConcept"], AJCC)[0] for m in members] == [
            "cT4",
            "cN2",
            "cM1",
        ]
        assert all(codes(m["method"], SCT) == [AJCC8] for m in members)
        assert all(m["effectiveDateTime"] == group["effectiveDateTime"] for m in members)


def test_case_report_ctc_draws_are_laboratory_tumor_marker_tests_4_2_0(
    case_report: dict[str, Any],
) -> None:
    draws = resources(case_report, "mcode-tumor-marker-test")
    assert [d["effectiveDateTime"] for d in draws] == ["2016-08-30", "2016-12-30", "2017-10-10"]
    assert [d["valueQuantity"]["value"] for d in draws] == [4, 2, 0]
    for draw in draws:
        assert draw["category"][0]["coding"][0]["code"] == "laboratory"
        assert codes(draw["code"], LOINC) == ["67568-6"]
        assert draw["valueQuantity"]["system"] == UCUM
        assert draw["valueQuantity"]["code"] == "{cells}/(7500.uL)"
        count, volume = draw["component"]
        assert count["valueQuantity"]["value"] == draw["valueQuantity"]["value"]
        assert volume["valueQuantity"] == {
            "value": 7.5,
            "unit": "mL",
            "system": UCUM,
            "code": "mL",
        }
        assert "CellRich" in draw["method"]["text"]


def test_case_report_treatments_refusals_and_liver_lesion_sizes(
    case_report: dict[str, Any],
) -> None:
    chemo = resources(case_report, "mcode-cancer-related-medication-administration")
    assert sorted(c["medicationCodeableConcept"]["text"] for c in chemo) == [
        "cisplatin",
        "paclitaxel",
    ]
    for given in chemo:
        assert given["effectivePeriod"] == {"start": "2016-06"}
        (intent,) = given["extension"]
        assert intent["url"] == MCODE + "mcode-procedure-intent"
        assert codes(intent["valueCodeableConcept"], SCT) == ["363676003"]  # palliative
    (rfa,) = resources(case_report, "mcode-cancer-related-surgical-procedure")
    assert rfa["resourceType"] == "Procedure" and rfa["status"] == "completed"
    assert "Radiofrequency ablation" in rfa["code"]["text"]
    assert rfa["performedDateTime"] == "2016-10"
    refusals = [
        r
        for r in resources(case_report)
        if r["resourceType"] == "Procedure" and r["status"] == "not-done"
    ]
    assert [r["performedDateTime"] for r in refusals] == ["2016-12-30", "2017-10-10"]
    for refusal in refusals:
        assert codes(refusal["statusReason"], SCT) == ["105480006"]  # refusal by patient
        assert refusal["statusReason"]["text"] == "The patient refused any anti-tumor therapy."
    (tumor,) = resources(case_report, "mcode-tumor")
    assert tumor["resourceType"] == "BodyStructure"
    assert [i["value"] for i in tumor["identifier"]] == ["liver-1"]
    assert tumor["identifier"][0]["type"]["coding"][0]["code"] == "BodyStructure"
    sizes = resources(case_report, "mcode-tumor-size")
    assert all(resolve(case_report, s["focus"][0]) is tumor for s in sizes)
    assert [s["effectiveDateTime"] for s in sizes] == [
        "2016-05",
        "2016-08-30",
        "2016-12-30",
        "2017-10-10",
    ]
    dimensions = [
        [(codes(c["code"], LOINC)[0], c["valueQuantity"]["value"]) for c in s["component"]]
        for s in sizes
    ]
    assert dimensions[0] == [("33728-7", 38), ("33729-5", 35), ("33729-5", 26)]
    assert [d[0][1] for d in dimensions] == [38, 38, 36, 32]
    for size in sizes:
        assert codes(size["code"], LOINC) == ["21889-1"]
        assert codes(size["method"], SCT) == ["16310003"]  # ultrasonography
        units = {
            (c["valueQuantity"]["system"], c["valueQuantity"]["code"]) for c in size["component"]
        }
        assert units == {(UCUM, "mm")}


def test_case_report_disease_status_follows_recist_on_the_liver_lesion(
    case_report: dict[str, Any],
) -> None:
    statuses = resources(case_report, "mcode-cancer-disease-status")
    # 38 → 38 → 36 → 32 mm: at most -15.8 % from baseline, never +20 %: stable each time.
    assert [s["effectiveDateTime"] for s in statuses] == ["2016-08-30", "2016-12-30", "2017-10-10"]
    for status in statuses:
        assert codes(status["code"], LOINC) == ["97509-4"]
        assert codes(status["valueCodeableConcept"], SCT) == ["359746009"]
        (evidence,) = status["extension"]
        assert codes(evidence["valueCodeableConcept"], SCT) == ["363679005"]  # imaging


def test_every_resource_names_its_ledger_event(
    system: OncoLedger, case_report: dict[str, Any]
) -> None:
    event_ids = {str(e.event_id) for e in system.history(CASE_REPORT_PATIENT)}
    sources = {r["meta"]["source"] for r in resources(case_report)}
    assert all(r["meta"]["versionId"] == "1" for r in resources(case_report))
    assert {s.removeprefix("urn:uuid:") for s in sources} <= event_ids
    # Every clinical event made at least one resource (patient_registered: the Patient).
    assert {s.removeprefix("urn:uuid:") for s in sources} == event_ids


def test_every_demo_patient_exports_a_valid_bundle_at_every_version(system: OncoLedger) -> None:
    system.record_demo(actor="nurse.a")
    for patient_id, events in demo_patients():
        for upto in range(1, len(events) + 1):
            bundle = export_fhir(system, patient_id, upto=upto)
            validate(bundle)
            patients = [r for r in resources(bundle) if r["resourceType"] == "Patient"]
            assert [p["identifier"][0]["value"] for p in patients] == [patient_id]
            sources = {r["meta"]["source"] for r in resources(bundle)}
            assert len(sources) == upto  # every event so far, and only those


def test_the_same_history_gives_the_same_bundle(
    system: OncoLedger, case_report: dict[str, Any]
) -> None:
    assert export_fhir(system, CASE_REPORT_PATIENT) == case_report


# -- corrections ---------------------------------------------------------------------------------


def test_an_amended_event_is_its_current_version_with_a_provenance(system: OncoLedger) -> None:
    register(system)
    _, _, ctc_id = record(system, "P1", diagnosis(), staging(), ctc("2016-03-01", 4))
    receipt = system.amend(
        "P1",
        UUID(ctc_id),
        ctc("2016-03-01", 5, blood_volume_ml=10.0),
        reason="transcription error",
        actor="dm.b",
        source="cli",
    )
    bundle = export_fhir(system, "P1")
    validate(bundle)
    (draw,) = resources(bundle, "mcode-tumor-marker-test")
    assert draw["meta"]["versionId"] == "2"
    assert draw["meta"]["source"] == f"urn:uuid:{ctc_id}"
    assert draw["status"] == "amended"
    assert draw["valueQuantity"]["value"] == 3.75  # 5 x 7.5 / 10
    assert [c["valueQuantity"]["value"] for c in draw["component"]] == [5, 10.0]
    (provenance,) = [r for r in resources(bundle) if r["resourceType"] == "Provenance"]
    assert provenance["meta"]["source"] == f"urn:uuid:{receipt.event_id}"
    assert [resolve(bundle, t) for t in provenance["target"]] == [draw]
    assert provenance["reason"][0]["text"] == "transcription error"
    assert provenance["agent"][0]["who"]["display"] == "dm.b"
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "author"
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
    assert provenance["entity"][0]["role"] == "revision"
    assert provenance["entity"][0]["what"]["identifier"]["value"] == ctc_id
    recorded = datetime.fromisoformat(provenance["recorded"])
    assert recorded == receipt.recorded_at


def test_a_retracted_event_is_entered_in_error_with_a_provenance(system: OncoLedger) -> None:
    register(system)
    dx_id, staging_id = record(system, "P1", diagnosis(), staging())
    system.retract("P1", UUID(staging_id), reason="wrong patient", actor="dm.b", source="cli")
    system.retract("P1", UUID(dx_id), reason="not confirmed", actor="dm.c", source="cli")
    bundle = export_fhir(system, "P1")
    validate(bundle)
    from_staging = [r for r in resources(bundle) if r["meta"]["source"] == f"urn:uuid:{staging_id}"]
    assert len(from_staging) == 4  # the stage group and its T, N, M
    assert all(r["status"] == "entered-in-error" for r in from_staging)
    assert all(r["meta"]["versionId"] == "2" for r in from_staging)
    (condition,) = resources(bundle, "mcode-primary-cancer-condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in condition  # con-5
    assert "stage" not in condition  # no stage in force
    (grade,) = resources(bundle, "mcode-histologic-grade")
    assert grade["status"] == "entered-in-error"
    provenances = [r for r in resources(bundle) if r["resourceType"] == "Provenance"]
    by_reason = {p["reason"][0]["text"]: p for p in provenances}
    assert set(by_reason) == {"wrong patient", "not confirmed"}
    removal = by_reason["wrong patient"]
    assert removal["entity"][0]["role"] == "removal"
    assert removal["activity"]["coding"][0]["code"] == "NULLIFY"
    assert {resolve(bundle, t)["id"] for t in removal["target"]} == {r["id"] for r in from_staging}
    assert by_reason["not confirmed"]["agent"][0]["who"]["display"] == "dm.c"


def test_a_corrected_death_is_a_new_patient_version(system: OncoLedger) -> None:
    register(system)
    (death_id,) = record(system, "P1", {"type": "death", "occurred": "2018-08"})
    system.amend(
        "P1",
        UUID(death_id),
        {"type": "death", "occurred": "2018-09-02", "cause": "cancer"},
        reason="death certificate",
        actor="dm.b",
        source="cli",
    )
    bundle = export_fhir(system, "P1")
    validate(bundle)
    (patient,) = [r for r in resources(bundle) if r["resourceType"] == "Patient"]
    assert patient["deceasedDateTime"] == "2018-09-02"
    assert patient["meta"]["versionId"] == "2"
    (provenance,) = [r for r in resources(bundle) if r["resourceType"] == "Provenance"]
    targets = [resolve(bundle, t)["resourceType"] for t in provenance["target"]]
    assert sorted(targets) == ["Observation", "Patient"]
    system.retract("P1", UUID(death_id), reason="alive after all", actor="dm.b", source="cli")
    bundle = export_fhir(system, "P1")
    validate(bundle)
    (patient,) = [r for r in resources(bundle) if r["resourceType"] == "Patient"]
    assert "deceasedDateTime" not in patient
    assert patient["meta"]["versionId"] == "3"
    (cause,) = [r for r in resources(bundle) if r.get("code", {}).get("text") == "Cause of death"]
    assert cause["status"] == "entered-in-error"


def test_as_of_gives_the_bundle_as_known_then(system: OncoLedger) -> None:
    register(system)
    (ctc_id,) = record(system, "P1", ctc("2016-03", 4))
    before = datetime.now(UTC)
    system.amend("P1", UUID(ctc_id), ctc("2016-03", 6), reason="recount", actor="x", source="cli")
    then = export_fhir(system, "P1", as_of=before)
    validate(then)
    (draw,) = resources(then, "mcode-tumor-marker-test")
    assert (draw["valueQuantity"]["value"], draw["meta"]["versionId"]) == (4, "1")
    assert draw["effectiveDateTime"] == "2016-03"
    assert not [r for r in resources(then) if r["resourceType"] == "Provenance"]
    (now,) = resources(export_fhir(system, "P1"), "mcode-tumor-marker-test")
    assert now["valueQuantity"]["value"] == 6
    (upto,) = resources(export_fhir(system, "P1", upto=2), "mcode-tumor-marker-test")
    assert upto["valueQuantity"]["value"] == 4
    with pytest.raises(NotFound, match="not yet registered"):
        export_fhir(system, "P1", as_of=before - timedelta(days=3650))
    with pytest.raises(NotFound, match="not registered"):
        export_fhir(system, "NOBODY")


# -- the rest of the mapping ---------------------------------------------------------------------


def test_other_treatments_and_histologies(sqlite_store: StoreConfig) -> None:
    with OncoLedger(sqlite_store) as system:
        register(system, primary_site="esophagus", birth_year=1948)
        record(
            system,
            "P1",
            diagnosis(histology="adenocarcinoma", tumor_location="lower", grade="GX"),
            staging(context="p", t="T1a", n="N0", m="M0"),
            staging("2016-02-20", t="TX", n="NX", m="M0"),
            {
                "type": "radiotherapy",
                "occurred": "2016-03",
                "target": "esophagus",
                "dose_gy": 50.4,
                "fractions": 28,
                "intent": "neoadjuvant",
            },
            {
                "type": "surgery",
                "occurred": "2016-05-02",
                "procedure": "Esophagectomy",
                "intent": "curative",
            },
            {"type": "therapy_declined", "occurred": "2016-06", "scope": "chemotherapy"},
            {"type": "follow_up", "occurred": "2016", "status": "lost_to_follow_up"},
        )
        bundle = export_fhir(system, "P1")
    validate(bundle)
    (patient,) = [r for r in resources(bundle) if r["resourceType"] == "Patient"]
    assert patient["birthDate"] == "1948" and patient["gender"] == "female"
    assert "deceasedDateTime" not in patient
    (condition,) = resources(bundle, "mcode-primary-cancer-condition")
    assert "276804009" not in codes(condition["code"], SCT)  # not SCC
    assert codes(condition["code"], "http://hl7.org/fhir/sid/icd-10-cm") == ["C15.5"]
    assert codes(condition["extension"][0]["valueCodeableConcept"], ICDO3) == ["8140/3"]
    assert codes(condition["bodySite"][0], ICDO3) == ["C15.5"]
    (grade,) = resources(bundle, "mcode-histologic-grade")
    assert grade["valueCodeableConcept"] == {"text": "GX: grade cannot be assessed"}
    group = resources(bundle, "mcode-tnm-stage-group")[0]
    assert codes(group["code"], SCT) == ["399588009"]  # pathologic
    members = [resolve(bundle, ref) for ref in group["hasMember"]]
    assert [codes(m["code"], SCT)[0] for m in members] == ["384625004", "371494008", "371497001"]
    assert [m["valueCodeableConcept"]["text"] for m in members] == ["pT1a", "pN0", "pM0"]
    unknown = resources(bundle, "mcode-tnm-stage-group")[1]
    # cTX NX M0 has no AJCC 8 group: said with a data-absent reason, never a made-up value.
    assert "valueCodeableConcept" not in unknown
    assert unknown["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert unknown["dataAbsentReason"]["text"].startswith("cTXNXM0")
    (course,) = resources(bundle, "mcode-radiotherapy-course-summary")
    assert codes(course["code"], SCT) == ["1217123003"]
    assert course["performedPeriod"] == {"start": "2016-03"}
    (dose,) = [e for e in course["extension"] if e["url"].endswith("dose-delivered-to-volume")]
    parts = {e["url"]: e for e in dose["extension"]}
    assert parts["totalDoseDelivered"]["valueQuantity"] == {
        "value": 5040.0,
        "unit": "cGy",
        "system": UCUM,
        "code": "cGy",
    }
    assert parts["fractionsDelivered"]["valueUnsignedInt"] == 28
    volume = resolve(bundle, parts["volume"]["valueReference"])
    assert volume["meta"]["profile"] == [MCODE + "mcode-radiotherapy-volume"]
    # Neoadjuvant is timing, not intent (ProcedureIntentVS leaves it out): no intent extension.
    assert not [e for e in course["extension"] if e["url"].endswith("procedure-intent")]
    (surgery,) = resources(bundle, "mcode-cancer-related-surgical-procedure")
    assert surgery["code"]["text"] == "Esophagectomy"
    assert codes(surgery["extension"][0]["valueCodeableConcept"], SCT) == ["373808002"]
    (declined,) = [r for r in resources(bundle) if r.get("status") == "not-done"]
    assert declined["code"]["text"] == "Chemotherapy"
    (follow_up,) = [
        r for r in resources(bundle) if r.get("code", {}).get("text") == "Follow-up status"
    ]
    assert codes(follow_up["valueCodeableConcept"], SCT) == ["399307001"]
    assert follow_up["effectiveDateTime"] == "2016"


# -- the validator can fail ----------------------------------------------------------------------


def _first(bundle: dict[str, Any], profile: str) -> dict[str, Any]:
    return resources(bundle, profile)[0]


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(
            lambda b: _first(b, "mcode-tumor-marker-test")["valueQuantity"].update(value="four"),
            id="a-word-for-a-decimal",
        ),
        pytest.param(
            lambda b: _first(b, "mcode-tnm-stage-group").update(effectiveDateTime="2016-13-40"),
            id="an-impossible-date",
        ),
        pytest.param(
            lambda b: _first(b, "mcode-cancer-patient").update(gender={"code": "male"}),
            id="an-object-for-a-code",
        ),
        pytest.param(
            lambda b: _first(b, "mcode-tumor-size").update(component="38 mm"),
            id="a-string-for-a-list",
        ),
        pytest.param(
            lambda b: _first(b, "mcode-tumor-marker-test").pop("code"),
            id="a-required-element-missing",
        ),
    ],
)
def test_a_broken_resource_fails_validation(case_report: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(case_report)
    break_it(broken)
    with pytest.raises(ValidationError):
        validate(broken)


# -- CLI and REST --------------------------------------------------------------------------------


def _cli(store: StoreConfig, *args: str) -> Any:
    return Cli(store, expect=None)(*args)


def test_cli_fhir_export(store: StoreConfig) -> None:
    assert _cli(store, "demo", "--quiet").exit_code == 0
    result = _cli(store, "fhir", "export", CASE_REPORT_PATIENT)
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    validate(bundle)
    assert len(resources(bundle, "mcode-tnm-stage-group")) == 4
    as_json = _cli(store, "fhir", "export", CASE_REPORT_PATIENT, "--json", "--upto", "3")
    assert as_json.exit_code == 0, as_json.output
    validate(json.loads(as_json.stdout))
    with OncoLedger(store) as system:
        entries = system.access_log.query(CASE_REPORT_PATIENT, None, None, None, 100).entries
        assert [(e.resource, e.actor, e.channel) for e in entries][-1] == ("fhir", "nurse.a", "cli")
    missing = _cli(store, "fhir", "export", "NOBODY")
    assert missing.exit_code == 3
    assert "NOBODY is not registered" in missing.stderr
    bad = _cli(store, "fhir", "export", CASE_REPORT_PATIENT, "--as-of", "yesterday")
    assert bad.exit_code == 2
    assert "--as-of" in bad.stderr
    early = _cli(store, "fhir", "export", CASE_REPORT_PATIENT, "--as-of", "2000-01-01")
    assert early.exit_code == 3
    assert "not yet registered" in early.stderr


def test_api_fhir_route(store: StoreConfig) -> None:
    with TestClient(create_app(store)) as client:
        ledger: OncoLedger = client.app.state.ledger
        ledger.record_demo(actor="nurse.a")
        token = ledger.tokens.create("reader-1", "reader")
        auth = {"Authorization": f"Bearer {token}"}
        url = f"/api/v1/patients/{CASE_REPORT_PATIENT}/fhir"
        response = client.get(url, headers=auth)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        bundle = response.json()
        validate(bundle)
        assert bundle == export_fhir(ledger, CASE_REPORT_PATIENT)
        entries = ledger.access_log.query(CASE_REPORT_PATIENT, "reader-1", None, None, 10).entries
        assert [(e.resource, e.channel) for e in entries] == [("fhir", "api")]
        etag = response.headers["ETag"]
        assert client.get(url, headers={**auth, "If-None-Match": etag}).status_code == 304
        as_of = client.get(url, headers=auth, params={"as_of": "2000-01-01T00:00:00Z"})
        assert as_of.status_code == 404
        assert "not yet registered" in as_of.json()["detail"]
        missing = client.get("/api/v1/patients/NOBODY/fhir", headers=auth)
        assert missing.status_code == 404
        assert "NOBODY" in missing.json()["detail"]
        bad = client.get(url, headers=auth, params={"as_of": "yesterday"})
        assert bad.status_code == 400
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_a_lesion_keeps_one_tumor_and_a_retracted_mention_does_not_deactivate_it(
    sqlite_store: StoreConfig,
) -> None:
    def imaging(occurred: str, mm: float) -> dict[str, Any]:
        lesion = {"lesion_id": "L1", "site": "liver", "dimensions_mm": [mm]}
        return {"type": "imaging", "occurred": occurred, "modality": "ct", "region": "abdomen",
                "lesions": [lesion]}  # fmt: skip

    with OncoLedger(sqlite_store) as system:
        register(system)
        first, _ = record(system, "P1", imaging("2016-02", 30), imaging("2016-05", 12))
        system.retract("P1", UUID(first), reason="other patient's scan", actor="x", source="cli")
        bundle = export_fhir(system, "P1")
    validate(bundle)
    (tumor,) = resources(bundle, "mcode-tumor")
    assert tumor["active"] is True
    sizes = resources(bundle, "mcode-tumor-size")
    assert [s["status"] for s in sizes] == ["entered-in-error", "final"]
    assert {resolve(bundle, s["focus"][0])["id"] for s in sizes} == {tumor["id"]}
    assert [s["component"][0]["valueQuantity"]["value"] for s in sizes] == [30, 12]
    # One scan in force: no RECIST comparison, so no disease status.
    assert resources(bundle, "mcode-cancer-disease-status") == []
