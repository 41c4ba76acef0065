"""Patient export: one self-contained JSON document that verifies offline, and fails when touched.

Exports are made on SQLite and, when a server is configured, on PostgreSQL; verification never
opens a database.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import msgspec
import pytest
from tamper import raw

from domain.errors import NotFound, RuleViolation
from domain.export import FORMAT, verify_export
from domain.integrity import event_hash
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

C2 = "c0000000-0000-4000-8000-000000000002"
S2 = "50000000-0000-4000-8000-000000000002"


def record(system: OncoLedger) -> None:
    system.register(
        "P1",
        {"occurred": "2016-04-26", "sex": "male", "birth_year": 1940, "note": "ESCC case"},
        actor="dr_a",
        source="cli",
    )
    system.append(
        "P1",
        [
            {"type": "diagnosis_confirmed", "occurred": "2016-05-09", "histology": "other"},
            {
                "type": "staging",
                "event_id": S2,
                "occurred": "2016-05-31",
                "t": "T4",
                "n": "N2",
                "m": "M1",
            },
            {"type": "ctc_count", "event_id": C2, "occurred": "2016-08-30", "count": 3},
            {
                "type": "imaging",
                "occurred": "2016-09-01",
                "modality": "ct",
                "region": "liver",
                "lesions": [{"lesion_id": "L1", "site": "liver", "dimensions_mm": [21.5, 14]}],
            },
        ],
        actor="dr_a",
        source="api",
    )
    system.amend(
        "P1",
        UUID(C2),
        {"type": "ctc_count", "occurred": "2016-08-30", "count": 2},
        reason="lab report says 2",
        actor="nurse_b",
        source="api",
    )
    system.retract("P1", UUID(S2), reason="wrong patient", actor="dm_c", source="cli")
    system.register("P2", {"occurred": "2018-02-01", "sex": "female"}, actor="dr_a", source="api")


@pytest.fixture
def exported(store: StoreConfig) -> Iterator[tuple[OncoLedger, dict[str, Any]]]:
    with OncoLedger(store) as system:
        record(system)
        yield system, system.export("P1")


def test_export_is_one_self_contained_document(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    system, document = exported
    # The document names its format and patient and carries every stored event, as stored
    assert set(document) == {
        "format",
        "patient_id",
        "exported_at",
        "events",
        "head",
        "chain_digest",
    }
    assert (document["format"], document["patient_id"]) == (FORMAT, "P1")
    events = document["events"]
    assert [e["version"] for e in events] == list(range(1, 8))
    assert [e["type"] for e in events][-2:] == ["event_amended", "event_retracted"]
    history = system.history("P1")
    assert events == [msgspec.to_builtins(e) for e in history]
    assert all({"prev_hash", "hash", "recorded_by", "recorded_at"} <= set(e) for e in events)
    assert document["head"] == {"version": 7, "hash": events[-1]["hash"]}
    line = f"P1 7 {events[-1]['hash']}\n".encode()
    assert document["chain_digest"] == hashlib.sha256(line).hexdigest()
    assert document["exported_at"].endswith("Z")
    # Only P1's stream
    assert {e["patient_id"] for e in events} == {"P1"}


def test_export_verifies_offline(exported: tuple[OncoLedger, dict[str, Any]]) -> None:
    system, document = exported
    data = msgspec.json.encode(document)
    system.close()  # no database from here on
    for form in (document, data, data.decode()):
        report = verify_export(form)
        assert report.ok, report
        assert (report.patient_id, report.events, report.head_version) == ("P1", 7, 7)
        assert report.head_hash == document["head"]["hash"]
        assert report.chain_digest == document["chain_digest"]
        assert report.first_break is None and report.problems == []
    # The composition root offers the same, without opening anything
    assert OncoLedger.verify_export(data, digest=document["chain_digest"]).ok


def test_the_ledger_verifies_the_same_chain(exported: tuple[OncoLedger, dict[str, Any]]) -> None:
    system, document = exported
    assert system.verify("P1").ok
    assert verify_export(document, digest=document["head"]["hash"]).digest_matched_version == 7


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string and number leaf of an event, as (path, its JSON text)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield prefix, str(value)


def _set(target: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _one_character_changed(text: str) -> str:
    first = text[0]
    swap = {"0": "1", "a": "b", "-": "_", ".": ","}.get(first, "0" if first != "0" else "1")
    return swap + text[1:]


def test_one_character_changed_anywhere_in_an_event_fails_naming_it(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    checked = 0
    for index, event in enumerate(document["events"]):
        for path, text in _paths(event):
            # Given the export with one character of one value changed
            tampered = copy.deepcopy(document)
            original = event
            for key in path[:-1]:
                original = original[key]
            leaf = original[path[-1]]
            changed: Any = _one_character_changed(text)
            if isinstance(leaf, int):
                changed = int(changed) if changed.lstrip("-").isdigit() else leaf + 1
            elif isinstance(leaf, float):
                changed = leaf + 1
            _set(tampered["events"][index], path, changed)
            # When it is verified
            report = verify_export(tampered)
            # Then it fails, naming the event
            assert not report.ok, path
            assert report.first_break is not None, path
            assert (report.first_break.patient_id, report.first_break.version) == (
                "P1",
                index + 1,
            ), path
            checked += 1
    assert checked >= 90  # every string and number in every event


def test_one_byte_changed_in_the_file_fails_naming_the_event(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    data = msgspec.json.encode(document)
    for index, event in enumerate(document["events"]):
        for field in ("occurred", "recorded_by", "event_id", "prev_hash"):
            value = str(event[field]).encode()
            # The event's own occurrence of the value: after its version's predecessors
            start = data.index(msgspec.json.encode(event)[:72])
            at = data.index(value, start)
            flipped = b"1" if data[at : at + 1] != b"1" else b"2"
            tampered = data[:at] + flipped + data[at + 1 :]
            report = verify_export(tampered)
            assert not report.ok
            assert report.first_break is not None
            assert report.first_break.version == index + 1, (index, field)


def test_a_changed_key_or_an_added_field_fails(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    renamed = copy.deepcopy(document)
    event = renamed["events"][3]
    event["cuont"] = event.pop("count")
    assert verify_export(renamed).first_break.version == 4  # type: ignore[union-attr]
    added = copy.deepcopy(document)
    added["events"][1]["extra"] = "added later"
    assert verify_export(added).first_break.version == 2  # type: ignore[union-attr]


def test_removed_or_reordered_events_fail(exported: tuple[OncoLedger, dict[str, Any]]) -> None:
    _system, document = exported
    dropped = copy.deepcopy(document)
    del dropped["events"][2]
    report = verify_export(dropped)
    assert not report.ok and report.first_break is not None
    assert report.first_break.version == 3
    swapped = copy.deepcopy(document)
    events = swapped["events"]
    events[2], events[3] = events[3], events[2]
    report = verify_export(swapped)
    assert report.first_break is not None and report.first_break.version == 3


def test_head_and_chain_digest_must_agree_with_the_events(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    wrong_head = copy.deepcopy(document)
    wrong_head["head"]["version"] = 6
    report = verify_export(wrong_head)
    assert not report.ok and report.first_break is None
    assert any("head" in p for p in report.problems)
    wrong_digest = copy.deepcopy(document)
    wrong_digest["chain_digest"] = "0" * 64
    report = verify_export(wrong_digest)
    assert not report.ok and any("chain_digest" in p for p in report.problems)
    wrong_format = copy.deepcopy(document)
    wrong_format["format"] = "something-else/9"
    assert not verify_export(wrong_format).ok


def test_a_truncated_export_needs_the_kept_digest_to_be_caught(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    kept = document["chain_digest"]
    # Given the last event dropped and head and chain_digest fixed up to match
    truncated = copy.deepcopy(document)
    last = truncated["events"].pop()
    previous = truncated["events"][-1]
    assert last["prev_hash"] == previous["hash"]
    truncated["head"] = {"version": 6, "hash": previous["hash"]}
    truncated["chain_digest"] = hashlib.sha256(f"P1 6 {previous['hash']}\n".encode()).hexdigest()
    # Then it is consistent with itself ...
    assert verify_export(truncated).ok
    # ... but not with the digest kept elsewhere
    report = verify_export(truncated, digest=kept)
    assert not report.ok and report.digest_matched_version is None


def test_a_digest_kept_at_an_earlier_export_matches_the_prefix(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record(system)
        earlier = system.export("P1")
        system.append(
            "P1",
            [{"type": "ctc_count", "occurred": "2017-01-10", "count": 0}],
            actor="dr_a",
            source="api",
        )
        later = system.export("P1")
    report = verify_export(later, digest=earlier["chain_digest"])
    assert report.ok and report.digest_matched_version == 7 and report.head_version == 8
    assert not verify_export(later, digest="f" * 64).ok


def test_a_rewritten_export_with_recomputed_hashes_fails_against_the_kept_digest(
    exported: tuple[OncoLedger, dict[str, Any]],
) -> None:
    _system, document = exported
    kept = document["chain_digest"]
    forged = copy.deepcopy(document)
    prev = None
    for event in forged["events"]:
        if event["type"] == "ctc_count":
            event["count"] = 9
        if prev is not None:
            event["prev_hash"] = prev
        event["hash"] = event_hash(event)
        prev = event["hash"]
    forged["head"] = {"version": 7, "hash": prev}
    forged["chain_digest"] = hashlib.sha256(f"P1 7 {prev}\n".encode()).hexdigest()
    assert verify_export(forged).ok  # consistent with itself
    assert not verify_export(forged, digest=kept).ok


@pytest.mark.parametrize(
    "document",
    [b"{not json", b"[]", b'{"format": "oncoledger-export/1"}', {"patient_id": "P1", "events": []}],
)
def test_malformed_documents_fail_with_a_reason(document: Any) -> None:
    report = verify_export(document)
    assert not report.ok and report.problems


def test_export_of_an_unknown_patient_is_not_found(store: StoreConfig) -> None:
    with OncoLedger(store) as system, pytest.raises(NotFound):
        system.export("P404")


def test_export_refuses_a_stream_whose_stored_chain_is_broken(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        record(system)
        table = "oncoledger_events" if store.is_postgres else "stored_events"
        ((state,),) = raw(
            store,
            f"SELECT state FROM {table} WHERE originator_id = 'P1' AND originator_version = 2",
        )
        tampered = bytes(state).replace(b'"histology":"other"', b'"histology":"adenocarcinoma"')
        raw(
            store,
            f"UPDATE {table} SET state = ? WHERE originator_id = 'P1' AND originator_version = 2",
            (tampered,),
        )
        with pytest.raises(RuleViolation) as raised:
            system.export("P1")
        assert "version 2" in raised.value.message
        assert system.export("P2")["head"]["version"] == 1
