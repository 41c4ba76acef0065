"""The ledger's event schemas (SPEC §3), one msgspec Struct per event type.

An event's JSON form is flat: the envelope and the type's own fields side by side, tagged by
`type`. The same Struct is what a client sends (server-assigned fields left out) and what is
stored, listed, exported and imported (server-assigned fields filled in). Validation of shape,
type and range happens on decode; rules that need the stream live in `domain.patient`.
"""

from __future__ import annotations

from datetime import datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from domain.dates import PARTIAL_DATE_PATTERN

PatientId = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Pseudonymous patient id: 1-64 of A-Z a-z 0-9 . _ -",
        examples=["P1"],
    ),
]
ClinicalDate = Annotated[
    str,
    Meta(
        pattern=PARTIAL_DATE_PATTERN,
        description="Clinical date, partial allowed: YYYY, YYYY-MM or YYYY-MM-DD",
        examples=["2016-08-30", "2016-05", "2016"],
    ),
]
Note = Annotated[str, Meta(max_length=2000)]
Text = Annotated[str, Meta(min_length=1, max_length=500)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Hash = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Salt = Annotated[str, Meta(pattern=r"^[0-9a-f]{32,64}$")]
PositiveInt = Annotated[int, Meta(ge=1)]
CellCount = Annotated[int, Meta(ge=0, le=1_000_000, description="Cells counted in the sample")]
BirthYear = Annotated[int, Meta(ge=1850, le=2200)]
Millimetres = Annotated[
    float,
    Meta(ge=0, le=2000, description="0 records a target lesion that has disappeared (RECIST CR)"),
]
# SPEC: > 0 and <= 50 mL. The floor of 0.01 mL keeps every normalised count a finite number.
BloodVolume = Annotated[
    float, Meta(ge=0.01, le=50, description="Millilitres of blood drawn (0.01 to 50)")
]
DoseGy = Annotated[float, Meta(gt=0, le=1000)]

Sex = Literal["female", "male", "other", "unknown"]
Histology = Literal["squamous_cell_carcinoma", "adenocarcinoma", "other"]
BiopsyHistology = Literal["squamous_cell_carcinoma", "adenocarcinoma", "other", "no_malignancy"]
Grade = Literal["G1", "G2", "G3", "GX"]
TumorLocation = Literal["upper", "middle", "lower", "unknown"]
DiagnosisBasis = Literal["histology", "cytology", "clinical"]
BiopsyMethod = Literal["needle", "endoscopic", "surgical", "other"]
Modality = Literal["ct", "mri", "ultrasound", "contrast_ultrasound", "pet_ct", "xray", "endoscopy"]
StagingContext = Literal["c", "p", "yc", "yp", "r"]
TCategory = Literal["TX", "T0", "Tis", "T1", "T1a", "T1b", "T2", "T3", "T4", "T4a", "T4b"]
NCategory = Literal["NX", "N0", "N1", "N2", "N3"]
MCategory = Literal["M0", "M1"]
StagingSystem = Literal["AJCC8"]
Intent = Literal["curative", "palliative", "neoadjuvant", "adjuvant", "unknown"]
AblationModality = Literal["radiofrequency", "microwave", "cryo", "other"]
DeclinedScope = Literal["all_antitumor", "chemotherapy", "radiotherapy", "surgery", "other"]
FollowUpStatus = Literal["alive", "lost_to_follow_up"]
DeathCause = Literal["cancer", "other", "unknown"]
Source = Literal["api", "cli", "import"]

# Fields the server assigns; a client never sends them (import strips them).
SERVER_FIELDS: tuple[str, ...] = (
    "version",
    "recorded_at",
    "recorded_by",
    "source",
    "prev_hash",
    "hash",
    "salt",
)


class Event(
    Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=False,
    tag_field="type",
):
    """The envelope every event carries."""

    event_id: UUID | None = None
    patient_id: PatientId | None = None
    occurred: ClinicalDate
    date_estimated: bool = False
    note: Note | None = None
    version: Annotated[int, Meta(ge=1)] | None = None
    recorded_at: datetime | None = None
    recorded_by: str | None = None
    source: Source | None = None
    prev_hash: Hash | None = None
    hash: Hash | None = None
    # 128 random bits the server draws for each event, hashed with it and encrypted with it:
    # once the patient's key is destroyed, a guessed payload cannot be confirmed by its hash.
    salt: Salt | None = None

    # Correction events point at another event; clinical events do not.
    is_correction: ClassVar[bool] = False

    @property
    def type(self) -> str:
        return str(type(self).__struct_config__.tag)


class PatientRegistered(Event, tag="patient_registered", frozen=True, kw_only=True):
    sex: Sex
    birth_year: BirthYear | None = None
    primary_site: Text = "esophagus"


class DiagnosisConfirmed(Event, tag="diagnosis_confirmed", frozen=True, kw_only=True):
    histology: Histology
    grade: Grade = "GX"
    tumor_location: TumorLocation = "unknown"
    basis: DiagnosisBasis = "histology"
    method: Text | None = None


class Biopsy(Event, tag="biopsy", frozen=True, kw_only=True):
    site: Text
    method: BiopsyMethod = "other"
    guidance: Text | None = None
    histology: BiopsyHistology | None = None
    grade: Grade | None = None
    finding: Note | None = None


class Lesion(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    lesion_id: Annotated[str, Meta(min_length=1, max_length=64)]
    site: Text
    dimensions_mm: Annotated[
        list[Millimetres],
        Meta(min_length=1, max_length=3, description="1 to 3 positive numbers, longest first"),
    ]
    new: bool = False


class Imaging(Event, tag="imaging", frozen=True, kw_only=True):
    modality: Modality
    region: Text
    finding: Note | None = None
    lesions: list[Lesion] = msgspec.field(default_factory=list)


class Staging(Event, tag="staging", frozen=True, kw_only=True):
    context: StagingContext = "c"
    t: TCategory
    n: NCategory
    m: MCategory
    system: StagingSystem = "AJCC8"
    stage_group: str | None = None


class Chemotherapy(Event, tag="chemotherapy", frozen=True, kw_only=True):
    regimen: Text
    agents: list[Text] = msgspec.field(default_factory=list)
    courses: PositiveInt = 1
    intent: Intent = "unknown"
    ended: ClinicalDate | None = None


class Radiotherapy(Event, tag="radiotherapy", frozen=True, kw_only=True):
    target: Text
    dose_gy: DoseGy
    fractions: PositiveInt
    intent: Intent = "unknown"


class Ablation(Event, tag="ablation", frozen=True, kw_only=True):
    modality: AblationModality
    site: Text
    target_lesion_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class Surgery(Event, tag="surgery", frozen=True, kw_only=True):
    procedure: Text
    intent: Intent = "unknown"


class TherapyDeclined(Event, tag="therapy_declined", frozen=True, kw_only=True):
    scope: DeclinedScope
    reason: Note | None = None


class CtcCount(Event, tag="ctc_count", frozen=True, kw_only=True):
    count: CellCount
    blood_volume_ml: BloodVolume = 7.5
    assay: Text | None = None
    sample_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class FollowUp(Event, tag="follow_up", frozen=True, kw_only=True):
    status: FollowUpStatus


class Death(Event, tag="death", frozen=True, kw_only=True):
    cause: DeathCause = "unknown"


ClinicalEvent = (
    PatientRegistered
    | DiagnosisConfirmed
    | Biopsy
    | Imaging
    | Staging
    | Chemotherapy
    | Radiotherapy
    | Ablation
    | Surgery
    | TherapyDeclined
    | CtcCount
    | FollowUp
    | Death
)


class EventAmended(Event, tag="event_amended", frozen=True, kw_only=True):
    target_event_id: UUID
    replacement: ClinicalEvent
    reason: Reason

    is_correction: ClassVar[bool] = True


class EventRetracted(Event, tag="event_retracted", frozen=True, kw_only=True):
    target_event_id: UUID
    reason: Reason

    is_correction: ClassVar[bool] = True


AnyEvent = ClinicalEvent | EventAmended | EventRetracted

# The one registry: each event type's Struct (its tag is the JSON `type`) and the past-tense
# name its stored topic carries (`oncoledger:Patient.<name>`; the topic survives moving code).
# Adding an event type touches this list (plus its rules in `domain.patient`, if it has any).
REGISTRY: tuple[tuple[type[Event], str], ...] = (
    (PatientRegistered, "Registered"),
    (DiagnosisConfirmed, "DiagnosisConfirmed"),
    (Biopsy, "Biopsied"),
    (Imaging, "Imaged"),
    (Staging, "Staged"),
    (Chemotherapy, "ChemotherapyGiven"),
    (Radiotherapy, "RadiotherapyGiven"),
    (Ablation, "Ablated"),
    (Surgery, "Operated"),
    (TherapyDeclined, "TherapyDeclined"),
    (CtcCount, "CtcCounted"),
    (FollowUp, "FollowedUp"),
    (Death, "Died"),
    (EventAmended, "EventAmended"),
    (EventRetracted, "EventRetracted"),
)


def tag_of(cls: type[Event]) -> str:
    return str(cls.__struct_config__.tag)


EVENT_TYPES: dict[str, type[Event]] = {tag_of(cls): cls for cls, _ in REGISTRY}
# tag -> the name in the stored topic.
STORED_NAMES: dict[str, str] = {tag_of(cls): name for cls, name in REGISTRY}

_encoder = msgspec.json.Encoder(order="sorted")


def convert_event(obj: Any) -> AnyEvent:
    """Validate an already-parsed JSON object (a dict) as an event."""
    event: AnyEvent = msgspec.convert(obj, AnyEvent, strict=True)
    return event


def to_builtins(event: Event) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(event)
    return result


def canonical_bytes(event: Event, *, without: tuple[str, ...] = ("hash",)) -> bytes:
    """msgspec JSON with sorted keys, leaving out the named fields (SPEC §6)."""
    data = to_builtins(event)
    for name in without:
        data.pop(name, None)
    if data.get("salt", "") is None:
        del data["salt"]  # an event recorded before salts: hashed as it was then
    return _encoder.encode(data)


def client_body_bytes(event: Event) -> bytes:
    """The part of an event the client chose: used to tell a retry from a conflicting reuse."""
    return canonical_bytes(event, without=(*SERVER_FIELDS, "patient_id", "event_id"))


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Import takes exported events: the server fields are assigned again on this ledger."""
    return {k: v for k, v in obj.items() if k not in SERVER_FIELDS}


# -- the trusted decode path -------------------------------------------------------------------
# Bytes the ledger itself wrote (and hash-chained, and sealed under the patient's key) are not
# client input: their shape, types and tags are still checked on decode, but not the input
# constraints (patterns, lengths, ranges) every one of them met when it was recorded. Each
# event Struct has a twin: a subclass that declares the same fields without their `Meta`
# constraints, so that what is decoded is an instance of the real class (`isinstance`, the tag,
# encoding and field order all as the real one) and compares equal to the same event decoded
# strictly. Client input never goes through these (`convert_event`, `domain.codec`).


def _unconstrained(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        return _unconstrained(get_args(tp)[0])
    if origin in (Union, UnionType):
        return Union[tuple(_unconstrained(a) for a in get_args(tp))]  # noqa: UP007
    if origin is list:
        return list[_unconstrained(get_args(tp)[0])]  # type: ignore[misc]
    if isinstance(tp, type) and issubclass(tp, Struct):
        return _trusted_twin(tp)
    return tp


def _same_as_real(self: Struct, other: object) -> Any:
    if not isinstance(other, Struct):
        return NotImplemented
    theirs = getattr(type(other), "_twin_of", type(other))
    if getattr(type(self), "_twin_of", type(self)) is not theirs:
        return False
    return bool(msgspec.structs.astuple(self) == msgspec.structs.astuple(other))


def _hash_as_real(self: Struct) -> int:
    real = type(self)._twin_of  # type: ignore[attr-defined]
    return hash(real(**msgspec.structs.asdict(self)))


_TWINS: dict[type[Struct], type[Struct]] = {}


def _trusted_twin(cls: type[Struct]) -> type[Struct]:
    if cls in _TWINS:
        return _TWINS[cls]
    hints = get_type_hints(cls, include_extras=True)
    fields: list[Any] = []
    for info in msgspec.structs.fields(cls):
        declared = hints[info.name]
        plain = _unconstrained(declared)
        if plain == declared:
            continue  # inherited as it is
        if info.default is not msgspec.NODEFAULT:
            fields.append((info.name, plain, info.default))
        elif info.default_factory is not msgspec.NODEFAULT:
            fields.append((info.name, plain, msgspec.field(default_factory=info.default_factory)))
        else:
            fields.append((info.name, plain))
    config = cls.__struct_config__
    twin = msgspec.defstruct(
        cls.__name__,
        fields,
        bases=(cls,),
        module=__name__,
        namespace={"_twin_of": cls, "__eq__": _same_as_real, "__hash__": _hash_as_real},
        tag=config.tag,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=config.forbid_unknown_fields,
        omit_defaults=config.omit_defaults,
        # Not tracked by the cyclic garbage collector: an event holds only values and lists of
        # values, never a reference cycle, and a process keeps many thousands of them (the
        # collector's passes over them doubled the cost of a decode).
        gc=False,
    )
    twin.__qualname__ = f"_Trusted{cls.__name__}"
    globals()[twin.__qualname__] = twin  # picklable by name
    _TWINS[cls] = twin
    return twin


TrustedEvent: Any = _unconstrained(AnyEvent)


def event_class(event: Event) -> type[Event]:
    """The event's own Struct class, for a trusted decode's twin too (look-ups keyed by class)."""
    cls: type[Event] = getattr(type(event), "_twin_of", type(event))
    return cls
