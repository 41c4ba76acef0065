"""The access log: every clinical read recorded, hash-chained, tamper-evident, concurrency-safe.

Every test runs on SQLite and, when a server is configured, on PostgreSQL.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tamper import raw

from domain.errors import ValidationFailed
from domain.ledger.access_log import AccessLog, row_hash
from domain.ledger.application import StoreConfig
from domain.patient import GENESIS_HASH
from projections.root import OncoLedger


@pytest.fixture
def system(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as system:
        system.register("P1", {"occurred": "2016-04-26", "sex": "male"}, actor="dr_a", source="cli")
        system.register(
            "P2", {"occurred": "2018-02-01", "sex": "female"}, actor="dr_a", source="api"
        )
        yield system


def five_reads(system: OncoLedger) -> None:
    system.log_access("dr_a", channel="cli", resource="history", patient_id="P1")
    system.log_access("dr_a", channel="api", resource="stage", patient_id="P1", address="10.0.0.5")
    system.log_access("res_r", channel="api", resource="patients", address="10.0.0.9")
    system.log_access("nurse_b", channel="api", resource="ctc", patient_id="P2", address="::1")
    system.log_access("dr_a", channel="cli", resource="export", patient_id="P2")


# -- recording and querying ----------------------------------------------------------------


def test_each_read_is_one_attributed_chained_row(system: OncoLedger) -> None:
    # Given five clinical reads through both channels
    started = datetime.now(UTC)
    five_reads(system)
    # When the log is listed
    entries = system.access_log.query().entries
    # Then each read is one row: who, which patient, what, how, from where, when
    assert [(e.seq, e.actor, e.patient_id, e.resource, e.channel, e.address) for e in entries] == [
        (1, "dr_a", "P1", "history", "cli", None),
        (2, "dr_a", "P1", "stage", "api", "10.0.0.5"),
        (3, "res_r", None, "patients", "api", "10.0.0.9"),
        (4, "nurse_b", "P2", "ctc", "api", "::1"),
        (5, "dr_a", "P2", "export", "cli", None),
    ]
    assert all(started <= e.at <= datetime.now(UTC) for e in entries)
    assert all(e.at.tzinfo is not None for e in entries)
    # And the rows form a hash chain from 64 zeros
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for entry in entries:
        row = {k: getattr(entry, k) for k in entry.__struct_fields__}
        row["at"] = entry.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert row_hash(row) == entry.hash
    assert system.access_log.head() == (5, entries[-1].hash)
    assert system.verify_access_log().ok


def test_reading_never_changes_a_patient_stream(system: OncoLedger) -> None:
    history = system.history("P1")
    ledger_digest = system.ledger.digest()
    five_reads(system)
    assert system.history("P1") == history
    assert system.ledger.digest() == ledger_digest
    assert len(system.audit().entries) == 2


def test_query_filters_and_pages(system: OncoLedger) -> None:
    five_reads(system)
    log = system.access_log
    assert [e.seq for e in log.query("P1").entries] == [1, 2]
    assert [e.seq for e in log.query(actor="dr_a").entries] == [1, 2, 5]
    assert [e.seq for e in log.query("P2", "dr_a").entries] == [5]
    assert [e.seq for e in log.query(resource="patients").entries] == [3]
    mark = datetime.now(UTC)
    time.sleep(0.002)
    system.log_access("dr_a", channel="cli", resource="timeline", patient_id="P1")
    assert [e.seq for e in log.query(since=mark).entries] == [6]
    assert [e.seq for e in log.query(until=mark).entries] == [1, 2, 3, 4, 5]
    today = datetime.now(UTC).date().isoformat()
    assert len(log.query(since=today, until=today).entries) == 6
    # Pages of two, by seq
    first = log.query(limit=2)
    assert [e.seq for e in first.entries] == [1, 2] and first.next_cursor == 2
    second = log.query(after=first.next_cursor, limit=2)
    assert [e.seq for e in second.entries] == [3, 4] and second.next_cursor == 4
    last = log.query(after=second.next_cursor, limit=2)
    assert [e.seq for e in last.entries] == [5, 6] and last.next_cursor is None
    assert log.query(actor="dr_a", after=2, limit=1).next_cursor == 5


def test_the_auditors_own_reading_of_the_log_is_logged(system: OncoLedger) -> None:
    five_reads(system)
    # When an auditor reads the accesses to P1
    page = system.access_entries("aud_x", channel="api", address="10.1.1.1", patient_id="P1")
    # Then they see the reads of P1, and their own read of the log is now a row too
    assert [(e.actor, e.resource) for e in page.entries] == [("dr_a", "history"), ("dr_a", "stage")]
    (own,) = system.access_log.query(actor="aud_x").entries
    assert (own.resource, own.patient_id, own.channel, own.address) == (
        "access-log",
        "P1",
        "api",
        "10.1.1.1",
    )
    # Filters pass through
    by_actor = system.access_entries("aud_x", channel="cli", actor="nurse_b")
    assert [e.resource for e in by_actor.entries] == ["ctc"]
    assert system.access_log.head()[0] == 7


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"actor": "", "channel": "api", "resource": "stage"}, "actor"),
        ({"actor": "a", "channel": "import", "resource": "stage"}, "channel"),
        ({"actor": "a", "channel": "api", "resource": ""}, "resource"),
        ({"actor": "a", "channel": "api", "resource": "Stage View"}, "resource"),
        ({"actor": "a", "channel": "api", "resource": "stage", "address": "x" * 201}, "address"),
    ],
)
def test_a_malformed_access_is_refused_and_nothing_stored(
    system: OncoLedger, kwargs: dict[str, Any], field: str
) -> None:
    kwargs = dict(kwargs)  # the parameters are shared by the SQLite and PostgreSQL runs
    actor = kwargs.pop("actor")
    with pytest.raises(ValidationFailed) as raised:
        system.log_access(actor, **kwargs)
    assert raised.value.field == field
    assert system.access_log.head() == (0, GENESIS_HASH)


@pytest.mark.parametrize(("query", "field"), [({"limit": 0}, "limit"), ({"after": -1}, "after")])
def test_bad_log_queries_are_validation_errors(
    system: OncoLedger, query: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        system.access_log.query(**query)
    assert raised.value.field == field


# -- tampering -------------------------------------------------------------------------------


def test_an_updated_row_is_detected(system: OncoLedger, store: StoreConfig) -> None:
    five_reads(system)
    kept = system.digest()
    # When a row's actor is rewritten behind the application's back
    raw(store, "UPDATE ol_access_log SET actor = ? WHERE seq = 2", ("someone_else",))
    # Then verify names the row, and the digest differs
    report = system.verify_access_log()
    assert (report.ok, report.first_broken_seq, report.entries) == (False, 2, 1)
    assert report.reason is not None and "content" in report.reason
    assert system.digest().sha256_with_access_log != kept.sha256_with_access_log
    assert system.digest(as_of=kept.as_of).sha256_with_access_log != kept.sha256_with_access_log


def test_a_row_rewritten_with_its_hash_recomputed_breaks_the_next_link(
    system: OncoLedger, store: StoreConfig
) -> None:
    five_reads(system)
    (row,) = raw(
        store,
        "SELECT seq, at, actor, channel, resource, patient_id, address, prev_hash "
        "FROM ol_access_log WHERE seq = 3",
    )
    data = dict(
        zip(
            ("seq", "at", "actor", "channel", "resource", "patient_id", "address", "prev_hash"),
            row,
            strict=True,
        )
    )
    data["patient_id"] = "P1"
    raw(
        store,
        "UPDATE ol_access_log SET patient_id = ?, hash = ? WHERE seq = 3",
        ("P1", row_hash(data)),
    )
    report = system.verify_access_log()
    assert (report.first_broken_seq, report.entries) == (4, 3)
    assert report.reason is not None and "prev_hash" in report.reason


def test_a_deleted_row_is_detected(system: OncoLedger, store: StoreConfig) -> None:
    five_reads(system)
    kept = system.digest()
    raw(store, "DELETE FROM ol_access_log WHERE seq = 2")
    report = system.verify_access_log()
    assert (report.ok, report.first_broken_seq) == (False, 2)
    assert report.reason is not None and "missing" in report.reason
    assert system.digest().sha256_with_access_log != kept.sha256_with_access_log


def test_reordered_rows_are_detected(system: OncoLedger, store: StoreConfig) -> None:
    five_reads(system)
    kept = system.digest()
    # When two rows swap their places in the chain
    raw(store, "UPDATE ol_access_log SET seq = -3 WHERE seq = 3")
    raw(store, "UPDATE ol_access_log SET seq = 3 WHERE seq = 4")
    raw(store, "UPDATE ol_access_log SET seq = 4 WHERE seq = -3")
    report = system.verify_access_log()
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert system.digest().sha256_with_access_log != kept.sha256_with_access_log


def test_removing_the_latest_rows_changes_the_digest(
    system: OncoLedger, store: StoreConfig
) -> None:
    five_reads(system)
    kept = system.digest()
    # When the latest read is erased, every remaining link is intact ...
    raw(store, "DELETE FROM ol_access_log WHERE seq = 5")
    assert system.verify_access_log().ok
    assert system.access_log.head()[0] == 4
    # ... but the digest kept elsewhere no longer matches
    after = system.digest()
    assert after.sha256_with_access_log != kept.sha256_with_access_log
    assert (kept.access_log_entries, after.access_log_entries) == (5, 4)
    assert system.digest(as_of=kept.as_of).sha256_with_access_log != kept.sha256_with_access_log


def test_an_untouched_log_keeps_its_digest_as_of_then(system: OncoLedger) -> None:
    five_reads(system)
    kept = system.digest()
    time.sleep(0.002)
    system.log_access("dr_a", channel="cli", resource="timeline", patient_id="P1")
    assert system.digest(as_of=kept.as_of).sha256_with_access_log == kept.sha256_with_access_log
    assert system.digest(as_of=kept.as_of).access_log_entries == 5


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_appends_keep_one_linear_chain(store: StoreConfig) -> None:
    # Given two independent logs on the same store (two processes' worth of connections)
    logs = [AccessLog.open(store), AccessLog.open(store)]
    threads_per_log, reads_per_thread = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(len(logs) * threads_per_log)

    def reader(log: AccessLog, name: str) -> None:
        try:
            start.wait()
            for i in range(reads_per_thread):
                log.record(name, channel="api", resource="ctc", patient_id=f"P{i % 3}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=reader, args=(log, f"user{n}_{t}"))
        for n, log in enumerate(logs)
        for t in range(threads_per_log)
    ]
    try:
        # When eight threads append at once
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then every read is one row of a single, unbroken chain
        assert errors == []
        total = len(logs) * threads_per_log * reads_per_thread
        report = logs[0].verify()
        assert (report.ok, report.entries) == (True, total)
        assert logs[1].head() == (total, report.head)
        seqs = [row[0] for row in raw(store, "SELECT seq FROM ol_access_log ORDER BY seq")]
        assert seqs == list(range(1, total + 1))
        per_actor = raw(store, "SELECT actor, COUNT(*) FROM ol_access_log GROUP BY actor")
        assert sorted(n for _, n in per_actor) == [reads_per_thread] * len(threads)
    finally:
        for log in logs:
            log.close()


def test_the_log_survives_reopening(store: StoreConfig) -> None:
    with OncoLedger(store) as system:
        system.log_access("dr_a", channel="cli", resource="patients")
        head = system.access_log.head()
    with OncoLedger(store) as system:
        assert system.access_log.head() == head
        system.log_access("dr_a", channel="cli", resource="patients")
        assert system.verify_access_log().entries == 2
