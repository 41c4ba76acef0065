"""The FHIR R4 / mCODE STU4 vocabulary of the FHIR export: profile URLs, code systems, codes.

Every code here comes from a cited source, named next to it: the mCODE STU4 IG source
(HL7/fhir-mCODE-ig 4.0.0, `input/fsh`, cited as file names), FHIR R4 4.0.1 itself, US Core
6.1.0 (which mCODE STU4 builds on), or a published standard (ICD-O-3, ICD-10-CM). Where no code
could be confirmed, the export writes a text-only CodeableConcept rather than guess one.
"""

from __future__ import annotations

from typing import Any, Final

MCODE: Final = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
US_CORE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"

# Profile canonical URLs: `Id:` of each profile in the IG's SD_*.fsh, under its canonical
# `http://hl7.org/fhir/us/mcode` (sushi-config.yaml); US Core ones as aliased in AL_USCore.fsh.
PROFILE: Final[dict[str, str]] = {
    "bundle": MCODE + "mcode-patient-bundle",  # SD_Bundle.fsh
    "patient": MCODE + "mcode-cancer-patient",  # SD_Patient.fsh
    "primary_condition": MCODE + "mcode-primary-cancer-condition",  # SD_Condition.fsh
    "histologic_grade": MCODE + "mcode-histologic-grade",  # SD_Histology.fsh
    "stage_group": MCODE + "mcode-tnm-stage-group",  # SD_Staging_TNM.fsh
    "t_category": MCODE + "mcode-tnm-primary-tumor-category",
    "n_category": MCODE + "mcode-tnm-regional-nodes-category",
    "m_category": MCODE + "mcode-tnm-distant-metastases-category",
    "tumor_size": MCODE + "mcode-tumor-size",  # SD_TumorSize.fsh
    "tumor": MCODE + "mcode-tumor",
    "disease_status": MCODE + "mcode-cancer-disease-status",  # SD_DiseaseStatus.fsh
    "medication_administration": MCODE + "mcode-cancer-related-medication-administration",
    "radiotherapy": MCODE + "mcode-radiotherapy-course-summary",  # SD_Radiotherapy.fsh
    "radiotherapy_volume": MCODE + "mcode-radiotherapy-volume",
    "surgical_procedure": MCODE + "mcode-cancer-related-surgical-procedure",  # SD_Surgery.fsh
    "tumor_marker": MCODE + "mcode-tumor-marker-test",  # SD_Genomics.fsh
    "procedure": US_CORE + "us-core-procedure",  # plain US Core where mCODE has no profile
}

# Extension URLs (SD_Extensions.fsh, SD_Radiotherapy.fsh; US Core; FHIR R4 core extensions).
EXT: Final[dict[str, str]] = {
    "histology": MCODE + "mcode-histology-morphology-behavior",
    "related_condition": MCODE + "mcode-related-condition",
    "evidence_type": MCODE + "mcode-cancer-disease-status-evidence-type",
    "intent": MCODE + "mcode-procedure-intent",
    "dose_to_volume": MCODE + "mcode-radiotherapy-dose-delivered-to-volume",
    "birthsex": US_CORE + "us-core-birthsex",
    "data_absent_reason": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
}

SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
NCIT: Final = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
ICDO3: Final = "http://terminology.hl7.org/CodeSystem/icd-o-3"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
AJCC: Final = "http://cancerstaging.org"  # AL_CodeSystems.fsh; in the TNM *MaxVS value sets
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DATA_ABSENT: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_AGENT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
RESOURCE_TYPES: Final = "http://hl7.org/fhir/resource-types"

# The ledger's own identifiers: a pseudonymous patient id and event UUIDs (meta.source).
PATIENT_ID_SYSTEM: Final = "urn:oncoledger:patient-id"
EVENT_ID_SYSTEM: Final = "urn:oncoledger:event-id"


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    result = {"system": system, "code": code}
    if display is not None:
        result["display"] = display
    return result


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if codings:
        result["coding"] = list(codings)
    if text is not None:
        result["text"] = text
    return result


def sct(code: str, display: str) -> dict[str, Any]:
    return coding(SNOMED, code, display)


# -- diagnosis ----------------------------------------------------------------------------------

# PrimaryCancerDisorderVS (SNOMED CT or ICD-10-CM). 276804009 per REFERENCE.md §1.
ESCC_DISORDER: Final = sct("276804009", "Squamous cell carcinoma of esophagus")
# ICD-10-CM C15: malignant neoplasm of esophagus, by third (ICD-10-CM tabular list).
ESOPHAGUS_ICD10CM: Final[dict[str, tuple[str, str]]] = {
    "upper": ("C15.3", "Malignant neoplasm of upper third of esophagus"),
    "middle": ("C15.4", "Malignant neoplasm of middle third of esophagus"),
    "lower": ("C15.5", "Malignant neoplasm of lower third of esophagus"),
    "unknown": ("C15.9", "Malignant neoplasm of esophagus, unspecified"),
}
# ICD-O-3 topography (WHO ICD-O-3; the IG's CancerBodyLocationVS admits ICD-O-3 topography).
ESOPHAGUS_TOPOGRAPHY: Final[dict[str, tuple[str, str]]] = {
    "upper": ("C15.3", "Upper third of esophagus"),
    "middle": ("C15.4", "Middle third of esophagus"),
    "lower": ("C15.5", "Lower third of esophagus"),
    "unknown": ("C15.9", "Esophagus, NOS"),
}
# histologyMorphologyBehavior: ICD-O-3 morphology with behaviour /3 (WHO ICD-O-3);
# adenocarcinoma also SNOMED 1187332001 (EX_Basic.fsh).
HISTOLOGY: Final[dict[str, list[dict[str, Any]]]] = {
    "squamous_cell_carcinoma": [coding(ICDO3, "8070/3", "Squamous cell carcinoma, NOS")],
    "adenocarcinoma": [
        coding(ICDO3, "8140/3", "Adenocarcinoma, NOS"),
        sct("1187332001", "Adenocarcinoma (morphologic abnormality)"),
    ],
}
HISTOLOGY_TEXT: Final[dict[str, str]] = {
    "squamous_cell_carcinoma": "Squamous cell carcinoma",
    "adenocarcinoma": "Adenocarcinoma",
    "other": "Other histology",
}
# Condition.evidence.code from CancerDiseaseStatusEvidenceTypeVS (required binding; the
# value set's own root concepts, VS_Other.fsh).
EVIDENCE: Final[dict[str, dict[str, Any]]] = {
    "histology": sct("714797009", "Histologic test (procedure)"),
    "cytology": sct("116147009", "Cytologic test (procedure)"),
    "clinical": sct("5880005", "Clinical examination (procedure)"),
}
IMAGING_EVIDENCE: Final = sct("363679005", "Imaging (procedure)")

# HistologicGrade: code NCIT C18000, values HistologicGradeVS (SD_Histology.fsh, VS_Other.fsh).
# G1 well / G2 moderately / G3 poorly differentiated read as low / intermediate / high grade.
GRADE_CODE: Final = coding(NCIT, "C18000", "Histologic Grade")
GRADE: Final[dict[str, dict[str, Any]]] = {
    "G1": sct("1155708003", "Low histologic grade (qualifier value)"),
    "G2": sct("1286893008", "Intermediate histologic grade (qualifier value)"),
    "G3": sct("1155707008", "High histologic grade (qualifier value)"),
}

# -- staging (VS_Staging_TNM.fsh) ---------------------------------------------------------------

AJCC8_METHOD: Final = sct(
    "897275008",
    "American Joint Commission on Cancer, Cancer Staging Manual, 8th edition neoplasm "
    "staging system (tumor staging)",
)
# Observation.code by staging context: clinical, pathologic, or (yc, yp, r: no type code of
# their own in the value sets) the generic one.
STAGE_TYPE: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "c": {
        "group": sct("399537006", "Clinical TNM stage grouping"),
        "t": sct("399504009", "cT category"),
        "n": sct("399534004", "cN category"),
        "m": sct("399387003", "cM category"),
    },
    "p": {
        "group": sct("399588009", "Pathologic TNM stage grouping"),
        "t": sct("384625004", "pT category"),
        "n": sct("371494008", "pN category"),
        "m": sct("371497001", "pM category"),
    },
    "other": {
        "group": sct("399390009", "TNM stage grouping"),
        "t": sct("78873005", "T category"),
        "n": sct("277206009", "N category"),
        "m": sct("277208005", "M category"),
    },
}
STAGE_PROFILE_KEY: Final[dict[str, str]] = {"t": "t_category", "n": "n_category", "m": "m_category"}

# -- imaging ------------------------------------------------------------------------------------

TUMOR_SIZE_CODE: Final = coding(LOINC, "21889-1", "Size Tumor")
LONGEST_DIMENSION: Final = coding(LOINC, "33728-7", "Size.maximum dimension in Tumor")
OTHER_DIMENSION: Final = coding(LOINC, "33729-5", "Size additional dimension in Tumor")
# TumorSizeMethodVS (extensible). Contrast ultrasound is ultrasonography; PET-CT is coded as
# PET; endoscopy has no code there and stays text.
TUMOR_SIZE_METHOD: Final[dict[str, dict[str, Any]]] = {
    "ct": sct("77477000", "Computerized axial tomography (procedure)"),
    "mri": sct("113091000", "Magnetic resonance imaging (procedure)"),
    "ultrasound": sct("16310003", "Diagnostic ultrasonography (procedure)"),
    "contrast_ultrasound": sct("16310003", "Diagnostic ultrasonography (procedure)"),
    "pet_ct": sct("82918005", "Positron emission tomography (procedure)"),
    "xray": sct("363680008", "Radiographic imaging procedure (procedure)"),
}
# Tumor.morphology from TumorMorphologyCodeVS (SD_TumorSize.fsh): its root concept.
TUMOR_MORPHOLOGY: Final = sct("1240414004", "Malignant neoplasm (morphologic abnormality)")
DISEASE_STATUS_CODE: Final = coding(LOINC, "97509-4", "Cancer Disease Progression")
# ConditionStatusTrendVS (VS_Other.fsh) by RECIST category.
DISEASE_STATUS: Final[dict[str, dict[str, Any]]] = {
    "CR": sct("268910001", "Patient's condition improved (finding)"),
    "PR": sct("268910001", "Patient's condition improved (finding)"),
    "SD": sct("359746009", "Patient's condition stable (finding)"),
    "PD": sct("271299001", "Patient's condition worsened (finding)"),
}

# -- treatment ----------------------------------------------------------------------------------

# ProcedureIntentVS (VS_Other.fsh). Neoadjuvant and adjuvant are left out on purpose: the IG
# drops them as "timing, not intent"; they go to the resource's note instead.
INTENT: Final[dict[str, dict[str, Any]]] = {
    "curative": sct("373808002", "Curative - procedure intent"),
    "palliative": sct("363676003", "Palliative - procedure intent"),
}
RADIOTHERAPY_COURSE: Final = sct("1217123003", "Radiotherapy course of treatment (regime/therapy)")
# TreatmentTerminationReasonVS (VS_Other.fsh).
REFUSAL: Final = sct("105480006", "Refusal of treatment by patient (situation)")
LOST_TO_FOLLOW_UP: Final = sct("399307001", "Lost to follow-up (finding)")

# -- CTC ----------------------------------------------------------------------------------------

# TumorMarkerTestVS is extensible and has no CTC code. LOINC 67568-6 is the code ARUP reports
# for "Circulating Tumor Cell Number" of its immunomagnetic CTC count (REFERENCE.md §1); its
# LOINC long name could not be confirmed here, so no display is claimed, only a text.
CTC_CODE: Final = concept(
    coding(LOINC, "67568-6"), text="Circulating tumor cells per 7.5 mL of blood"
)
CATEGORY_LABORATORY: Final = concept(coding(OBS_CATEGORY, "laboratory", "Laboratory"))
CATEGORY_IMAGING: Final = concept(coding(OBS_CATEGORY, "imaging", "Imaging"))
