"""One patient's rows: the patient attributes, the samples and the timeline events, each with
its day counted from diagnosis."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from domain import events as ev
from domain.dates import parse
from domain.errors import ValidationFailed
from projections import readmodels
from projections.cbioportal.formats import number
from projections.cbioportal.tables import (
    DECLINED,
    MAIN_TYPE,
    MAX_SAMPLE_ID_LENGTH,
    MODALITIES,
    ONCOTREE,
    TIMELINES,
    Row,
)
from projections.ctc import CtcView
from projections.effective import Item, in_force, of_type
from projections.response import ResponseView
from projections.stage import StageView
from projections.survival import SurvivalView


class PatientRecord:
    """One patient's rows, from the read models and the events in force."""

    def __init__(self, patient_id: str, history: Sequence[ev.AnyEvent]) -> None:
        self.patient_id = patient_id
        views, self.row = readmodels.project(patient_id, history)
        self.stage: StageView = views["stage"]  # type: ignore[assignment]
        self.ctc: CtcView = views["ctc"]  # type: ignore[assignment]
        self.response: ResponseView = views["response"]  # type: ignore[assignment]
        self.survival: SurvivalView = views["survival"]  # type: ignore[assignment]
        self.items = in_force(history)
        self.diagnosis = next(
            (body for _, body in of_type(self.items, ev.DiagnosisConfirmed)), None
        )
        if self.survival.diagnosis_date is not None:
            self.zero, self.zero_is = parse(self.survival.diagnosis_date).imputed, "diagnosis"
        elif self.items:
            self.zero, self.zero_is = self.items[0].day, "first event"
        else:
            self.zero, self.zero_is = date.today(), "none"
        self.biopsies = of_type(self.items, ev.Biopsy)
        self.sample_ids = [f"{patient_id}-S{n}" for n in range(1, len(self.biopsies) + 1)]
        longest = self.sample_ids[-1] if self.sample_ids else f"{patient_id}-S1"
        if len(longest) > MAX_SAMPLE_ID_LENGTH:
            raise ValidationFailed(
                f"patient {patient_id}: sample id {longest!r} would be longer than the "
                f"{MAX_SAMPLE_ID_LENGTH} characters cBioPortal accepts; leave this patient out "
                "with the cohort filters",
                field="patient_id",
                rule="sample_id_length",
            )

    def day(self, occurred: str) -> int:
        return (parse(occurred).imputed - self.zero).days

    # -- clinical attributes ---------------------------------------------------------------------

    def patient_row(self) -> Row:
        row, stage, ctc, survival = self.row, self.stage, self.ctc, self.survival
        age = None
        if row.birth_year is not None and survival.diagnosis_date is not None:
            age = parse(survival.diagnosis_date).year - row.birth_year
        os_status = None
        if survival.os_months is not None:
            os_status = "1:DECEASED" if survival.status == "dead" else "0:LIVING"
        return {
            "PATIENT_ID": self.patient_id,
            "SEX": _words(row.sex).capitalize() if row.sex else None,
            "AGE": age,
            "TUMOR_SITE": row.primary_site,
            "HISTOLOGY": _words(row.histology).capitalize() if row.histology else None,
            "TUMOR_GRADE": self.diagnosis.grade if self.diagnosis else None,
            "STAGE_GROUP": stage.current.stage_group if stage.current else None,
            "STAGE_TNM": stage.current.tnm if stage.current else None,
            "STAGE_GROUP_AT_DIAGNOSIS": (
                stage.at_diagnosis.stage_group if stage.at_diagnosis else None
            ),
            "STAGE_TREND": stage.trend,
            "CTC_DRAWS": len(ctc.draws),
            "CTC_BASELINE_PER_7_5_ML": ctc.draws[0].per_7_5_ml if ctc.draws else None,
            "CTC_LATEST_PER_7_5_ML": ctc.latest_per_7_5_ml,
            "CTC_TREND": ctc.trend,
            "CTC_CLEARED": ctc.cleared,
            "CTC_RULE": ctc.rule,
            "CONCORDANCE": ctc.concordance.status,
            "CONCORDANCE_SUMMARY": ctc.concordance.summary,
            "RECIST_RESPONSE": self.response.current_category,
            "OS_STATUS": os_status,
            "OS_MONTHS": survival.os_months,
            "OS_APPROXIMATE": survival.approximate if survival.os_months is not None else None,
            "TIMELINE_ZERO": self.zero_is,
        }

    def sample_rows(self) -> list[Row]:
        histology = self.row.histology
        esophagus = "esophag" in (self.row.primary_site or "").lower()
        code, detailed = ONCOTREE.get(histology or "", (None, None)) if esophagus else (None, None)
        common: Row = {
            "PATIENT_ID": self.patient_id,
            "CANCER_TYPE": MAIN_TYPE if esophagus else None,
            "CANCER_TYPE_DETAILED": detailed,
            "ONCOTREE_CODE": code,
        }
        if not self.biopsies:
            return [{**common, "SAMPLE_ID": f"{self.patient_id}-S1", "SAMPLE_SOURCE": "patient"}]
        site = (self.row.primary_site or "").lower()
        rows = []
        for sample_id, (item, biopsy) in zip(self.sample_ids, self.biopsies, strict=True):
            primary = bool(site) and site in biopsy.site.lower()
            rows.append(
                {
                    **common,
                    "SAMPLE_ID": sample_id,
                    "SAMPLE_TYPE": "Primary" if primary else None,
                    "SAMPLE_SOURCE": "biopsy",
                    "SPECIMEN_SITE": biopsy.site,
                    "SPECIMEN_METHOD": _method(biopsy),
                    "SAMPLE_HISTOLOGY": _words(biopsy.histology) if biopsy.histology else None,
                    "SAMPLE_GRADE": biopsy.grade,
                    "DAYS_FROM_DIAGNOSIS": self.day(item.body.occurred),
                }
            )
        return rows

    # -- timelines ---------------------------------------------------------------------------------

    def timeline_rows(self) -> dict[str, list[Row]]:
        rows: dict[str, list[Row]] = {t.stem: [] for t in TIMELINES}
        samples = {
            item.event_id: sid
            for (item, _), sid in zip(self.biopsies, self.sample_ids, strict=True)
        }
        stages = {a.event_id: a for a in self.stage.history}
        draws = {d.event_id: d for d in self.ctc.draws}
        recist = {eid: a for a in self.response.assessments for eid in a.event_ids}
        for item in self.items:
            for stem, row in self._rows_of(item, samples, stages, draws, recist):
                rows[stem].append(
                    {
                        "PATIENT_ID": self.patient_id,
                        "START_DATE": self.day(item.body.occurred),
                        "DATE_APPROXIMATE": (
                            "yes" if item.approximate or item.body.date_estimated else "no"
                        ),
                        "SOURCE_EVENT_ID": str(item.event_id),
                        **row,
                    }
                )
        return rows

    def _rows_of(
        self,
        item: Item,
        samples: dict[Any, str],
        stages: dict[Any, Any],
        draws: dict[Any, Any],
        recist: dict[Any, Any],
    ) -> Iterator[tuple[str, Row]]:
        body = item.body
        if isinstance(body, ev.Biopsy):
            yield (
                "specimen",
                {
                    "SAMPLE_ID": samples[item.event_id],
                    "SPECIMEN_SITE": body.site,
                    "SPECIMEN_TYPE": "tissue",
                    "METHOD": _method(body),
                    "HISTOLOGY": _words(body.histology) if body.histology else None,
                    "GRADE": body.grade,
                },
            )
        elif isinstance(body, ev.DiagnosisConfirmed):
            yield (
                "status",
                {
                    "STATUS": f"Diagnosis: {_words(body.histology)}",
                    "DETAIL": f"grade {body.grade}; location {body.tumor_location}; basis "
                    f"{body.basis}" + (f" ({body.method})" if body.method else ""),
                },
            )
        elif isinstance(body, ev.Staging):
            assessment = stages.get(item.event_id)
            group = assessment.stage_group if assessment else body.stage_group
            tnm = assessment.tnm if assessment else f"{body.context}{body.t}{body.n}{body.m}"
            yield (
                "status",
                {
                    "STATUS": f"Stage {group} ({tnm})",
                    "STAGE_GROUP": group,
                    "TNM": tnm,
                    "STAGING_SYSTEM": "AJCC 8th edition",
                },
            )
        elif isinstance(body, ev.TherapyDeclined):
            yield "status", {"STATUS": f"Declined {DECLINED[body.scope]}", "DETAIL": body.reason}
        elif isinstance(body, ev.FollowUp):
            status = "Lost to follow-up" if body.status == "lost_to_follow_up" else "Alive"
            yield "status", {"STATUS": status}
        elif isinstance(body, ev.Death):
            yield "status", {"STATUS": "DECEASED", "DETAIL": f"cause: {body.cause}"}
        elif isinstance(body, ev.Imaging):
            assessment = recist.get(item.event_id)
            yield (
                "imaging",
                {
                    "DIAGNOSTIC_TYPE": MODALITIES.get(body.modality, body.modality),
                    "DIAGNOSTIC_TYPE_DETAILED": body.region,
                    "RESULT": body.finding,
                    "LESIONS": len(body.lesions) if body.lesions else None,
                    "TARGET_SUM_MM": assessment.sum_mm if assessment else None,
                    "RECIST_CATEGORY": assessment.category if assessment else None,
                },
            )
        elif isinstance(body, ev.CtcCount):
            draw = draws.get(item.event_id)
            yield (
                "lab_test",
                {
                    "TEST": "CTC",
                    "RESULT": draw.per_7_5_ml if draw else body.count * 7.5 / body.blood_volume_ml,
                    "UNIT": "cells per 7.5 mL",
                    "CTC_COUNT": body.count,
                    "BLOOD_VOLUME_ML": body.blood_volume_ml,
                    "POSITIVE": ("yes" if draw.positive else "no") if draw else None,
                    "POSITIVITY_RULE": self.ctc.rule,
                    "ASSAY": body.assay,
                    "BLOOD_SAMPLE": body.sample_id,
                },
            )
        elif isinstance(body, ev.Chemotherapy):
            start = self.day(body.occurred)
            stop = max(start, self.day(body.ended)) if body.ended else None
            for agent in body.agents or [body.regimen]:
                yield (
                    "treatment",
                    {
                        "STOP_DATE": stop,
                        "TREATMENT_TYPE": "Medical Therapy",
                        "SUBTYPE": "Chemotherapy",
                        "AGENT": agent,
                        "REGIMEN": body.regimen,
                        "COURSES": body.courses,
                        "INTENT": body.intent,
                    },
                )
        elif isinstance(body, ev.Radiotherapy):
            yield (
                "treatment",
                {
                    "TREATMENT_TYPE": "Radiation Therapy",
                    "SUBTYPE": "Radiotherapy",
                    "AGENT": f"{number(body.dose_gy)} Gy in {body.fractions} fractions",
                    "INTENT": body.intent,
                    "TARGET": body.target,
                    "DOSE_GY": body.dose_gy,
                    "FRACTIONS": body.fractions,
                },
            )
        elif isinstance(body, ev.Ablation):
            yield (
                "surgery",
                {
                    "SUBTYPE": "Ablation",
                    "PROCEDURE": f"{_words(body.modality).capitalize()} ablation",
                    "SITE": body.site,
                    "TARGET_LESION": body.target_lesion_id,
                },
            )
        elif isinstance(body, ev.Surgery):
            yield (
                "surgery",
                {"SUBTYPE": "Surgery", "PROCEDURE": body.procedure, "INTENT": body.intent},
            )


def _words(code: str) -> str:
    return code.replace("_", " ")


def _method(biopsy: ev.Biopsy) -> str:
    return f"{biopsy.method}, {biopsy.guidance}-guided" if biopsy.guidance else biopsy.method
