"""Issue 9, property-based: nothing a client sends breaks the ledger.

Random bytes, deep nesting, and NUL or unpaired surrogates in every text field of every event
type (nested ones included) are thrown at the import parser, the REST bodies and the service
layer. Whatever is sent: no 500, no traceback, a refusal stores nothing, the views stay current.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from domain import events as ev
from domain.codec import decode_entry
from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

TEXT = "x"  # every text field of the bodies below holds this, and only text fields do
CLINICAL: dict[str, dict[str, Any]] = {
    "patient_registered": {"sex": "male", "birth_year": 1950, "primary_site": TEXT},
    "diagnosis_confirmed": {"histology": "adenocarcinoma", "method": TEXT},
    "biopsy": {"site": TEXT, "guidance": TEXT, "finding": TEXT},
    "imaging": {
        "modality": "ct",
        "region": TEXT,
        "finding": TEXT,
        "lesions": [{"lesion_id": TEXT, "site": TEXT, "dimensions_mm": [10.0]}],
    },
    "staging": {"t": "T2", "n": "N0", "m": "M0", "stage_group": TEXT},
    "chemotherapy": {"regimen": TEXT, "agents": [TEXT, TEXT]},
    "radiotherapy": {"target": TEXT, "dose_gy": 50.0, "fractions": 25},
    "ablation": {"modality": "microwave", "site": TEXT, "target_lesion_id": TEXT},
    "surgery": {"procedure": TEXT},
    "therapy_declined": {"scope": "other", "reason": TEXT},
    "ctc_count": {"count": 1, "assay": TEXT, "sample_id": TEXT},
    "follow_up": {"status": "alive"},
    "death": {"cause": "other"},
}
# Text the server assigns; text with a pattern of its own (ids, dates, hashes) is left out too.
NOT_FREE_TEXT = {"recorded_by"}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def clinical(type_: str) -> dict[str, Any]:
    return {"type": type_, "occurred": "2021-01-01", "note": TEXT, **CLINICAL[type_]}


def full_bodies(target: str) -> list[dict[str, Any]]:
    """One body per event type (an amendment per replacement type) with every text field."""
    bodies = [clinical(t) for t in CLINICAL]
    bodies += [
        {"type": "event_amended", "occurred": "2021-01-01", "target_event_id": target,
         "reason": TEXT, "note": TEXT, "replacement": clinical(t)}
        for t in CLINICAL
    ]  # fmt: skip
    bodies.append(
        {"type": "event_retracted", "occurred": "2021-01-01", "target_event_id": target,
         "reason": TEXT, "note": TEXT}
    )  # fmt: skip
    return bodies


def text_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if value == TEXT:
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from text_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from text_paths(child, (*path, index))


def declared_text_fields(t: mi.Type, name: str = "") -> Iterator[str]:
    """Every str field a type declares (msgspec's own view of the schema), as `a.b[].c`."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.StrType):
        if t.pattern is None:
            yield name
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from declared_text_fields(member, name)
    elif isinstance(t, mi.ListType):
        yield from declared_text_fields(t.item_type, f"{name}[]")
    elif isinstance(t, mi.StructType):
        for f in t.fields:
            if f.encode_name not in NOT_FREE_TEXT:
                yield from declared_text_fields(f.type, f"{name}.{f.encode_name}".lstrip("."))


def dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def with_value(body: dict[str, Any], path: tuple[Any, ...], value: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


class Target:
    """One app over one store, a registered patient with one draw, and the counts to keep."""

    def __init__(self, client: TestClient[Litestar]) -> None:
        self.client = client
        self.system: OncoLedger = client.app.state.ledger
        token = self.system.tokens.create("clin", "clinician")
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        registration = {"type": "patient_registered", "occurred": "2020", "sex": "male"}
        self.system.append("P1", [registration], actor="a", source="cli")
        draw = {"type": "ctc_count", "occurred": "2021", "count": 4}
        self.target = str(self.system.append("P1", [draw], actor="a", source="cli")[0].event_id)
        # The server's projector applies writes after they return: current before the inputs.
        self.system.catch_up_views()

    def post(self, url: str, content: bytes) -> Any:
        response = self.client.post(url, content=content, headers=self.headers)
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        return response

    def stored(self) -> int:
        return sum(1 for _ in self.system.ledger.scan())

    def assert_unchanged_and_current(self, stored: int) -> None:
        assert self.stored() == stored
        assert self.system.views.status()["behind"] == 0
        response = self.client.get("/api/v1/patients/P1/ctc", headers=self.headers)
        assert response.status_code == 200 and len(response.json()["draws"]) == 1


@pytest.fixture
def target(store: StoreConfig, caplog: pytest.LogCaptureFixture) -> Iterator[Target]:
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield Target(client)
    # no request was answered with a 500 (each would have been logged with its traceback)
    assert not [r for r in caplog.records if r.name == "oncoledger.api"]


def test_the_bodies_cover_every_declared_text_field() -> None:
    # every body is valid as it stands, so a refusal below is about the injected text
    bodies = full_bodies("11111111-1111-4111-8111-111111111111")
    for body in bodies:
        decode_entry(body)
    covered = {(b["type"], dotted(p).replace("[0]", "[]").replace("[1]", "[]"))
               for b in bodies for p in text_paths(b)}  # fmt: skip
    for type_, cls in ev.EVENT_TYPES.items():
        declared = set(declared_text_fields(mi.type_info(cls)))
        if type_ == "event_amended":
            declared = {d for d in declared if not d.startswith("replacement.")}
            replacements = {
                ("event_amended", f"replacement.{field}")
                for t in CLINICAL
                for field in declared_text_fields(mi.type_info(ev.EVENT_TYPES[t]))
            }
            assert replacements <= covered
        assert {(type_, d) for d in declared} <= covered, type_


BAD = st.tuples(
    st.text(max_size=4), st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]),
    st.text(max_size=4),
).map("".join)  # fmt: skip
CASES = st.data()


@SETTINGS
@given(data=CASES, bad=BAD)
def test_unstorable_text_in_any_field_is_refused_everywhere(
    target: Target, data: st.DataObject, bad: str
) -> None:
    body = data.draw(st.sampled_from(full_bodies(target.target)))
    path = data.draw(st.sampled_from(list(text_paths(body))))
    sent = with_value(body, path, bad)
    field = dotted(path)
    stored = target.stored()
    is_nul = "\x00" in bad and not any("\ud800" <= c <= "\udfff" for c in bad)

    # the service layer names the field for both kinds
    with pytest.raises(ValidationFailed) as refused:
        target.system.append("P1", [sent], actor="a", source="cli")
    assert refused.value.field == field and refused.value.rule == "storable_text"

    # REST: a 400; a NUL is named by its field (an unpaired surrogate escape is not JSON at all)
    response = target.post("/api/v1/patients/P1/events", json.dumps(sent).encode())
    assert response.status_code == 400
    assert response.json()["extra"]["field"] == (field if is_nul else "$")

    # import: the line is refused by number, with the reason
    line = json.dumps({"patient_id": "P1", **sent}).encode()
    report = target.system.import_lines(io.BytesIO(line), actor="dm")
    assert report.stored == 0 and [n for n, _ in report.failed] == [1]
    target.assert_unchanged_and_current(stored)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused_without_a_500(target: Target, data: bytes) -> None:
    stored = target.stored()
    for url in (
        "/api/v1/patients/P1/events",
        "/api/v1/patients/P1/events/batch",
        "/api/v1/patients",
        f"/api/v1/patients/P1/events/{target.target}/retractions",
    ):
        assert target.post(url, data).status_code != 201  # fmt: skip
    report = target.system.import_lines(io.BytesIO(data), actor="dm")
    assert report.stored == 0 and all(reason for _, reason in report.failed)
    target.assert_unchanged_and_current(stored)


@SETTINGS
@given(
    depth=st.integers(min_value=20, max_value=5000),
    opener=st.sampled_from(["[", '{"a":']),
    where=st.sampled_from(["body", "note", "lesions", "replacement"]),
)
def test_deep_nesting_is_refused_without_a_500(
    target: Target, depth: int, opener: str, where: str
) -> None:
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    around = {
        "body": "DEEP",
        "note": {"type": "ctc_count", "occurred": "2021", "count": 1, "note": "DEEP"},
        "lesions": {"type": "imaging", "occurred": "2021", "modality": "ct", "region": "r",
                    "lesions": "DEEP"},
        "replacement": {"type": "event_amended", "occurred": "2021", "reason": "r",
                        "target_event_id": target.target, "replacement": "DEEP"},
    }[where]  # fmt: skip
    text = json.dumps(around).replace('"DEEP"', deep)
    stored = target.stored()
    response = target.post("/api/v1/patients/P1/events", text.encode())
    assert response.status_code == 400, response.text
    line = text if where == "body" else text[:1] + '"patient_id":"P1",' + text[1:]
    report = target.system.import_lines(io.BytesIO(line.encode()), actor="dm")
    assert report.stored == 0 and [n for n, _ in report.failed] == [1]
    target.assert_unchanged_and_current(stored)
