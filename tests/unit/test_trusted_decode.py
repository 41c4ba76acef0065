"""The trusted decode path: what the ledger stored decodes without the input constraints, into
instances of the real event classes, identical to a strict decode; client input is still
validated in full."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from domain import events as ev
from domain.codec import decode_entry, decode_stored
from domain.errors import ValidationFailed
from domain.patient import Patient

BODIES: list[dict[str, Any]] = [
    {"type": "patient_registered", "occurred": "2015-01-01", "sex": "female", "birth_year": 1950},
    {"type": "diagnosis_confirmed", "occurred": "2015-02", "histology": "adenocarcinoma"},
    {"type": "staging", "occurred": "2015-02-10", "t": "T2", "n": "N1", "m": "M0"},
    {
        "type": "imaging",
        "occurred": "2015-03-01",
        "modality": "ct",
        "region": "chest",
        "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [12.5, 8]}],
    },
    {"type": "chemotherapy", "occurred": "2015-04", "regimen": "FLOT", "agents": ["5-FU"]},
    {"type": "ctc_count", "occurred": "2015-05-01", "count": 4, "blood_volume_ml": 7.4},
    {"type": "follow_up", "occurred": "2016", "status": "alive", "note": "well"},
]


def _stored() -> list[ev.AnyEvent]:
    patient = Patient("P1")
    for body in BODIES:
        patient.record(decode_entry(body), actor="t", source="cli")
    imaging = patient.entries[3]
    replacement = {k: v for k, v in msgspec.to_builtins(imaging).items() if k == "type"}
    replacement |= {k: v for k, v in BODIES[3].items() if k != "type"} | {"region": "abdomen"}
    for body in (
        {
            "type": "event_amended",
            "occurred": "2016-01-01",
            "target_event_id": str(imaging.event_id),
            "replacement": replacement,
            "reason": "region",
        },
        {
            "type": "event_retracted",
            "occurred": "2016-01-01",
            "target_event_id": str(patient.entries[5].event_id),
            "reason": "wrong patient",
        },
    ):
        patient.record(decode_entry(body), actor="t", source="cli")
    return patient.entries


def test_stored_bytes_decode_identically_to_a_strict_decode() -> None:
    for entry in _stored():
        stored = ev.encode(entry)
        trusted = decode_stored(stored)
        strict = msgspec.json.decode(stored, type=ev.AnyEvent)
        assert trusted == strict and strict == trusted and trusted == entry
        assert isinstance(trusted, type(entry))
        assert ev.event_class(trusted) is type(entry)
        assert trusted.type == entry.type
        assert ev.encode(trusted) == stored
        assert ev.canonical_bytes(trusted) == ev.canonical_bytes(entry)
        assert ev.client_body_bytes(trusted) == ev.client_body_bytes(entry)
        if isinstance(entry, ev.EventAmended):
            assert isinstance(trusted, ev.EventAmended)
            assert isinstance(trusted.replacement, ev.Imaging)
            assert trusted.replacement.lesions == entry.replacement.lesions  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "ctc_count", "occurred": "2015-05-01", "count": -1}, "count"),
        ({"type": "ctc_count", "occurred": "someday", "count": 1}, "occurred"),
        ({"type": "ctc_count", "occurred": "2015", "count": 1, "patient_id": "a b"}, "patient_id"),
        ({"type": "surgery", "occurred": "2015", "procedure": ""}, "procedure"),
        (
            {
                "type": "imaging",
                "occurred": "2015",
                "modality": "ct",
                "region": "chest",
                "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [-2]}],
            },
            "lesions[0].dimensions_mm[0]",
        ),
    ],
)
def test_client_input_is_still_validated_in_full(body: dict[str, Any], field: str) -> None:
    """Each body breaks one input constraint: the client path refuses it naming the field,
    while the trusted path (only ever given stored bytes) does not run that constraint."""
    with pytest.raises(ValidationFailed) as refused:
        decode_entry(body)
    assert refused.value.field == field
    assert decode_stored(ev.encode(body)).type == body["type"]


def test_bodies_of_a_trusted_decode_are_tracked_by_their_own_class() -> None:
    """`InForce(track=...)` keeps the bodies of the tracked types whether they came from a
    strict or a trusted decode (a twin class): the aggregate's rules read them."""
    from domain.in_force import InForce

    for decode in (
        lambda e: e,
        lambda e: decode_stored(msgspec.json.encode(e)),
    ):
        in_force = InForce(track=(ev.DiagnosisConfirmed,))
        for entry in _stored():
            in_force.apply(decode(entry))
        tracked = in_force.tracked(ev.DiagnosisConfirmed)
        assert [body.histology for body in tracked.values()] == ["adenocarcinoma"]
