"""The cohort filters are one list (`projections.cohort_filters`): every cohort route and command
offers all of them, the OpenAPI document lists each with its schema, and the query check knows
them from the shared dependency (unknown names and integers not in digits answer 400)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import V1, Api

from cli.main import cli
from projections import cohort_filters

COHORT_ROUTES = {
    "listPatients": f"{V1}/patients",
    "getCohortSurvival": f"{V1}/cohort/survival?by=histology",
    "getCohortSurvivalPlot": f"{V1}/cohort/survival/plot?by=histology",
}


def _operations(api: Api) -> dict[str, dict[str, Any]]:
    document = api.client.get("/schema/openapi.json").json()
    return {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_every_cohort_route_documents_every_filter_with_its_schema(api: Api) -> None:
    operations = _operations(api)
    for operation_id in COHORT_ROUTES:
        query = {p["name"]: p for p in operations[operation_id]["parameters"] if p["in"] == "query"}
        for name in (*cohort_filters.NAMES, "status"):
            assert name in query, (operation_id, name)
            assert query[name].get("schema"), (operation_id, name)
    sex = next(p for p in operations["listPatients"]["parameters"] if p["name"] == "sex")
    assert "male" in str(sex["schema"])  # the vocabulary reaches the document
    events = next(p for p in operations["listPatients"]["parameters"] if p["name"] == "events_min")
    assert "integer" in str(events["schema"])


@pytest.mark.parametrize("url", COHORT_ROUTES.values())
def test_the_query_check_knows_the_filters_of_the_shared_dependency(api: Api, url: str) -> None:
    joiner = "&" if "?" in url else "?"
    unknown = api.get(f"{url}{joiner}stage_grup=IVB")
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["extra"]["field"] == "stage_grup"
    assert "events_min" in unknown.json()["detail"]  # the filters are named as taken
    digits = api.get(f"{url}{joiner}events_min=1e3")
    assert digits.status_code == 400, digits.text
    assert digits.json()["extra"]["field"] == "events_min"
    assert digits.json()["extra"]["rule"] == "integer"
    fine = api.get(f"{url}{joiner}events_min=0&sex=male")
    assert fine.status_code == 200, fine.text


def test_every_cohort_command_takes_every_filter() -> None:
    for path in (("patient", "list"), ("cohort", "survival"), ("cbioportal", "export")):
        command: Any = cli
        for name in path:
            command = command.commands[name]
        taken = {p.name for p in command.params}
        assert set(cohort_filters.NAMES) <= taken, (path, set(cohort_filters.NAMES) - taken)
