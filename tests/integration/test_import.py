"""Bulk import: runs of one patient's lines are stored together, and exactly the bad lines fail."""

from __future__ import annotations

import json

from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


def lines(*events: dict[str, object]) -> list[str]:
    return [json.dumps(e) for e in events]


def test_a_bad_line_inside_a_patients_run_fails_alone(store: StoreConfig) -> None:
    # given one patient's events, the second of which breaks a rule, and a line that is not JSON
    data = lines(
        {"patient_id": "P1", "type": "patient_registered", "occurred": "2020-01-01", "sex": "male"},
        {
            "patient_id": "P1",
            "type": "staging",
            "occurred": "2020-01-02",
            "t": "T2",
            "n": "N0",
            "m": "M0",
        },
        {
            "patient_id": "P1",
            "type": "diagnosis_confirmed",
            "occurred": "2020-01-03",
            "histology": "adenocarcinoma",
        },
        {
            "patient_id": "P2",
            "type": "patient_registered",
            "occurred": "2020-01-01",
            "sex": "female",
        },
        {"patient_id": "P1", "type": "ctc_count", "occurred": "2020-01-04", "count": 2},
    )
    data.insert(3, "{not json")
    with OncoLedger(store) as system:
        # when it is imported
        report = system.import_lines(data, actor="dm")
        # then the valid lines are stored in order, and lines 2 and 4 are reported with reasons
        assert report.stored == 4
        assert [n for n, _ in report.failed] == [2, 4]
        assert "diagnosis_confirmed earlier" in report.failed[0][1]
        assert "not valid JSON" in report.failed[1][1]
        assert [e.type for e in system.history("P1")] == [
            "patient_registered",
            "diagnosis_confirmed",
            "ctc_count",
        ]
        assert system.patient("P2").sex == "female"
        # and importing the same file again stores nothing new for lines that carry no conflict
        again = system.import_lines(data[:1], actor="dm")
        assert (again.stored, [n for n, _ in again.failed]) == (0, [1])
