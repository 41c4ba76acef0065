"""The typed options of `record` and `amend`: one option per event field, turned into a JSON body.

The options only shape a body; the domain validates it (types, ranges, which fields a type
has), so an option given to a type without that field is refused by the domain, naming it.
Allowed values shown in `--help` are read from the event schemas, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import msgspec

from cli.params import StrParamType
from domain import events as ev

F = TypeVar("F", bound=Callable[..., Any])

# Types `record` takes; corrections have their own commands (`amend`, `retract`).
CLINICAL_TYPES: tuple[str, ...] = tuple(
    name for name, cls in ev.EVENT_TYPES.items() if not cls.is_correction
)
ALIASES: dict[str, str] = {
    "register": "patient_registered",
    "registration": "patient_registered",
    "diagnosis": "diagnosis_confirmed",
    "chemo": "chemotherapy",
    "radio": "radiotherapy",
    "declined": "therapy_declined",
    "ctc": "ctc_count",
    "followup": "follow_up",
}
ENVELOPE_FIELDS = frozenset(ev.Event.__struct_fields__)


class EventTypeParam(StrParamType):
    """An event type name (`ctc_count`, `ctc-count`) or a short alias (`ctc`)."""

    name = "TYPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower().replace("-", "_")
        name = ALIASES.get(text, text)
        if name not in CLINICAL_TYPES:
            known = ", ".join(CLINICAL_TYPES)
            aliases = ", ".join(f"{a}={t}" for a, t in ALIASES.items())
            self.fail(f"{value!r} is not an event type: use one of {known} (aliases: {aliases})")
        return name


EVENT_TYPE = EventTypeParam()


def parse_lesion(text: str) -> dict[str, Any]:
    """`ID:SITE:DIMxDIMxDIM[:new]` → a lesion object; the site may itself contain colons."""
    parts = text.split(":")
    new = parts[-1].strip().lower() == "new"
    if new:
        parts = parts[:-1]
    if len(parts) < 3:
        raise click.BadParameter(
            f"{text!r} is not ID:SITE:DIMENSIONS[:new] (e.g. liver-1:liver:38x35x26)",
            param_hint="'--lesion'",
        )
    lesion_id, site, dims = parts[0], ":".join(parts[1:-1]), parts[-1]
    try:
        dimensions = [float(d) for d in dims.lower().split("x")]
    except ValueError:
        raise click.BadParameter(
            f"{dims!r} in {text!r} is not millimetres like 38x35x26", param_hint="'--lesion'"
        ) from None
    return {"lesion_id": lesion_id, "site": site, "dimensions_mm": dimensions, "new": new}


@dataclass(frozen=True)
class BodyOption:
    """One event field as a CLI option."""

    field: str
    flags: tuple[str, ...]
    help: str
    type: Any = str
    multiple: bool = False
    # Extra flags offered by `record` only (`amend` has its own `--reason`).
    record_flags: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None

    @property
    def param(self) -> str:
        return f"body_{self.field}"


BODY_OPTIONS: tuple[BodyOption, ...] = (
    BodyOption("sex", ("--sex",), "patient sex"),
    BodyOption("birth_year", ("--birth-year",), "year of birth", type=int),
    BodyOption("primary_site", ("--primary-site",), "primary site, e.g. esophagus"),
    BodyOption("histology", ("--histology",), "histology"),
    BodyOption("grade", ("--grade",), "grade"),
    BodyOption("tumor_location", ("--tumor-location",), "location within the esophagus"),
    BodyOption("basis", ("--basis",), "basis of the diagnosis"),
    BodyOption("method", ("--method",), "diagnostic or biopsy method"),
    BodyOption("site", ("--site",), "biopsy or ablation site"),
    BodyOption("guidance", ("--guidance",), "biopsy guidance, e.g. ultrasound"),
    BodyOption("finding", ("--finding",), "finding, free text"),
    BodyOption("modality", ("--modality",), "imaging or ablation modality"),
    BodyOption("region", ("--region",), "imaged region"),
    BodyOption(
        "lesions",
        ("--lesion",),
        "lesion as ID:SITE:DIMxDIMxDIM[:new] in mm, longest first; repeatable",
        multiple=True,
        convert=lambda values: [parse_lesion(v) for v in values],
    ),
    BodyOption("context", ("--context",), "staging context"),
    BodyOption("t", ("--t",), "T category"),
    BodyOption("n", ("--n",), "N category"),
    BodyOption("m", ("--m",), "M category"),
    BodyOption("system", ("--system",), "staging system"),
    BodyOption("stage_group", ("--stage-group",), "stage group (optional: the server computes it)"),
    BodyOption("regimen", ("--regimen",), "chemotherapy regimen, e.g. TP"),
    BodyOption("agents", ("--agent",), "chemotherapy agent; repeatable", multiple=True),
    BodyOption("courses", ("--courses",), "number of courses", type=int),
    BodyOption("intent", ("--intent",), "treatment intent"),
    BodyOption("ended", ("--ended",), "chemotherapy end date (YYYY[-MM[-DD]])"),
    BodyOption("target", ("--target",), "radiotherapy target"),
    BodyOption("dose_gy", ("--dose-gy", "--dose"), "radiotherapy dose in Gy", type=float),
    BodyOption("fractions", ("--fractions",), "radiotherapy fractions", type=int),
    BodyOption("target_lesion_id", ("--target-lesion",), "lesion id an ablation treats"),
    BodyOption("procedure", ("--procedure",), "surgical procedure"),
    BodyOption("scope", ("--scope",), "which therapy was declined"),
    BodyOption(
        "reason",
        ("--declined-reason",),
        "why the therapy was declined",
        record_flags=("--reason",),
    ),
    BodyOption("count", ("--count",), "CTCs counted", type=int),
    BodyOption(
        "blood_volume_ml", ("--volume", "--blood-volume-ml"), "blood volume in mL", type=float
    ),
    BodyOption("assay", ("--assay",), "CTC assay, free text"),
    BodyOption("sample_id", ("--sample-id",), "CTC sample id"),
    BodyOption("status", ("--status",), "follow-up status"),
    BodyOption("cause", ("--cause",), "cause of death"),
)
_BY_FIELD = {option.field: option for option in BODY_OPTIONS}


def _choices(field: str) -> list[str]:
    """The allowed values of `field` where every type that has it makes it an enum."""
    found: list[str] = []
    for name in CLINICAL_TYPES:
        info = msgspec.inspect.type_info(ev.EVENT_TYPES[name])
        assert isinstance(info, msgspec.inspect.StructType)
        for f in info.fields:
            if f.name != field:
                continue
            t = f.type
            if isinstance(t, msgspec.inspect.UnionType):
                t = next((u for u in t.types if isinstance(u, msgspec.inspect.LiteralType)), t)
            if not isinstance(t, msgspec.inspect.LiteralType):
                return []
            found += [str(v) for v in t.values if str(v) not in found]
    return found


def _fields_of(type_name: str) -> list[str]:
    return [f for f in ev.EVENT_TYPES[type_name].__struct_fields__ if f not in ENVELOPE_FIELDS]


def types_help() -> str:
    """Per type, the options that fill its fields (for the commands' epilog)."""
    lines = []
    for name in CLINICAL_TYPES:
        flags = [_BY_FIELD[f].flags[0] for f in _fields_of(name) if f in _BY_FIELD]
        alias = [a for a, t in ALIASES.items() if t == name]
        label = f"{name} ({', '.join(alias)})" if alias else name
        lines.append(f"{label}: {' '.join(flags)}")
    return "\b\nEvent types and their options:\n" + "\n".join(lines)


def body_options(*, for_record: bool) -> Callable[[F], F]:
    """Decorate a command with every field option (as `body_<field>` parameters)."""

    def decorate(command: F) -> F:
        for option in reversed(BODY_OPTIONS):
            flags = option.flags + (option.record_flags if for_record else ())
            choices = _choices(option.field)
            text = f"{option.help} [{'|'.join(choices)}]" if choices else option.help
            command = click.option(
                option.param,
                *flags,
                type=option.type,
                multiple=option.multiple,
                default=None,
                help=text,
            )(command)
        return command

    return decorate


def given_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The body fields the user set, from the command's `body_<field>` parameters."""
    body: dict[str, Any] = {}
    for option in BODY_OPTIONS:
        value = values.get(option.param)
        if value is None or (option.multiple and not value):
            continue
        if option.multiple:
            value = list(value)
        body[option.field] = option.convert(value) if option.convert else value
    return body


def build_body(
    type_name: str,
    *,
    occurred: str,
    estimated: bool,
    note: str | None,
    fields: dict[str, Any],
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event body in its flat JSON form, ready for the service layer to validate."""
    body: dict[str, Any] = {"type": type_name, "occurred": occurred}
    if event_id is not None:
        body["event_id"] = event_id
    if estimated:
        body["date_estimated"] = True
    if note is not None:
        body["note"] = note
    body.update(fields)
    return body
