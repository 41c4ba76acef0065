"""Property-based run over the whole API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid, with an admin token, over a store
holding the demo patients: no response may be a server error, and each must match the status
codes, headers and body schemas the document declares.

Operations are driven with `APIOperation.as_strategy()` under Hypothesis rather than through
`schemathesis.pytest.from_fixture`, whose lazy loading does not run under pytest 9 (it sets
`request.node._nodeid`, which pytest 9 no longer has); that way the store fixture (SQLite,
PostgreSQL) parametrises it like every other test. MAX_EXAMPLES per operation keeps the run
under a minute for both stores.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from domain.demo import demo_patients, record_demo
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

MAX_EXAMPLES = 25


# Path ids that exist, mixed into the generated ones so that success paths are exercised too.
DEMO = demo_patients()
PATIENT_IDS = [patient_id for patient_id, _ in DEMO]
EVENT_IDS = [str(events[1]["event_id"]) for _, events in DEMO]


def known_ids(case: schemathesis.Case, patient_id: str | None, event_id: str | None) -> None:
    if patient_id is not None and "patient_id" in (case.path_parameters or {}):
        case.path_parameters["patient_id"] = patient_id
        if event_id is not None and "event_id" in case.path_parameters:
            case.path_parameters["event_id"] = EVENT_IDS[PATIENT_IDS.index(patient_id)]


@pytest.fixture
def served(store: StoreConfig) -> Iterator[tuple[Litestar, str]]:
    with OncoLedger(store) as ledger:
        record_demo(ledger.ledger, actor="demo", source="cli")
        ledger.views.catch_up()
        token = ledger.tokens.create("fuzzer", "admin")
    yield create_app(store), token


def test_every_operation_conforms_to_the_document(served: tuple[Litestar, str]) -> None:
    # One application for all operations: schemathesis keeps an ASGI app's lifespan (and so
    # its open store) alive until the process ends.
    app, token = served
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 31  # + projections status, erasure, erasures
    # An SSE stream only ends when the client leaves: tests/test_feed.py drives that one.
    operations = [op for op in operations if op.label != "GET /api/v1/events/stream"]
    assert len(operations) == 30

    for operation in operations:

        @given(
            case=operation.as_strategy(),
            patient_id=st.sampled_from([None, *PATIENT_IDS]),
            event_id=st.sampled_from([None, "known"]),
        )
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case: schemathesis.Case, patient_id: str | None, event_id: str | None) -> None:
            known_ids(case, patient_id, event_id)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                # Schema-valid bodies are often refused by the ledger's rules (an unknown
                # patient, a date before birth): 404 or 422 is then right, not a failure.
                excluded_checks=[positive_data_acceptance],
                # schemathesis gives up on a response after 10 s by default; a chart's first
                # render (matplotlib's first import and font cache) can take longer than that
                # on a loaded machine, which Hypothesis then reports as a flaky test.
                timeout=300,
            )

        try:
            conforms()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures[operation.label] = "".join(traceback.format_exception(exc))
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
