"""`oncoledger cohort survival`, `demo --cohort`, the synthetic filter and
`GET /api/v1/cohort/survival`: what researchers type and what they get back."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Cli
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from domain.demo.cohort import synthetic_patient
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> StoreConfig:
    """One SQLite ledger with the demo patients and 120 synthetic ones, shared (read only)."""
    config = StoreConfig(sqlite_path=str(tmp_path_factory.mktemp("db") / "ledger.db"))
    Cli(config, actor="researcher.r")("demo", "--cohort", "120", "--quiet")
    return config


@pytest.fixture
def run(demo_store: StoreConfig) -> Cli:
    return Cli(demo_store, actor="researcher.r")


def test_demo_cohort_is_synthetic_reproducible_and_varied(
    run: Cli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pid, events = synthetic_patient(7)
    assert pid == "SYN-00007" and "Synthetic patient" in events[0]["note"]
    assert synthetic_patient(7) == (pid, events)  # seeded: the same every time
    assert synthetic_patient(7, seed=1) != (pid, events)
    again = run.json("demo", "--cohort", "120")
    assert again["synthetic_cohort"] == {  # recording it again stores nothing
        "patients": 120, "first": "SYN-00001", "last": "SYN-00120", "seed": 2016, "new_events": 0
    }  # fmt: skip
    assert (
        "synthetic cohort SYN-00001..SYN-00120 (seed 2016): 0 new events"
        in run("demo", "--cohort", "120").stdout
    )
    rows = run.json("patient", "list", "--synthetic", "--limit", "1000")["patients"]
    generated = [r for r in rows if r["patient_id"].startswith("SYN-")]
    assert len(generated) == 120
    assert len({r["ctc_trend"] for r in generated}) == 5
    assert len({r["stage_group"] for r in generated}) >= 6
    assert {r["survival_status"] for r in generated} == {"alive", "dead"}
    assert {r["histology"] for r in generated} >= {"squamous_cell_carcinoma", "adenocarcinoma"}


def test_synthetic_filter_in_the_cohort_index(run: Cli) -> None:
    real = run.json("patient", "list", "--no-synthetic")
    assert [r["patient_id"] for r in real["patients"]] == ["CR-ESCC-001"]
    synthetic = run.json("patient", "list", "--synthetic", "--limit", "1000")
    assert synthetic["total"] == 122  # 120 generated + the two DEMO- patients
    assert all(r["patient_id"].startswith(("SYN-", "DEMO-")) for r in synthetic["patients"])


def test_cohort_survival_table_and_json(run: Cli) -> None:
    out = run("cohort", "survival", "--by", "ctc_trend").stdout
    assert "Overall survival by ctc_trend (current data, no landmark" in out
    assert "log-rank: chi2 =" in out and "Cox PH: ctc_trend adjusted for stage_at_diagnosis" in out
    assert "definitions:" in out and "time_zero:" in out
    report = run.json("cohort", "survival", "--by", "stage_group", "--no-cox")
    assert report["by"] == "stage_group" and report["cox"] is None
    assert report["definitions"]["time_zero"].startswith("the diagnosis date")
    group = report["groups"][0]
    assert set(group) >= {"group", "n", "events", "censored", "median_months", "survival", "curve"}
    assert [m["months"] for m in group["survival"]] == [12, 24, 36]
    assert set(group["curve"][0]) == {"months", "survival", "ci95", "at_risk", "events", "censored"}
    assert set(report["logrank"]) >= {"statistic", "df", "p"}


def test_cohort_survival_filters_and_synthetic_counts(run: Cli) -> None:
    everyone = run.json("cohort", "survival", "--by", "histology", "--no-cox")
    assert everyone["patients"]["synthetic"] == everyone["patients"]["analysed"] - 1
    assert any("synthetic" in w for w in everyone["warnings"])
    real = run.json("cohort", "survival", "--by", "histology", "--no-synthetic", "--no-cox")
    assert real["patients"]["analysed"] == 1 and real["patients"]["synthetic"] == 0
    adeno = run.json(
        "cohort", "survival", "--by", "ctc_trend", "--histology", "adenocarcinoma", "--no-cox"
    )
    assert 0 < adeno["patients"]["matched"] < everyone["patients"]["matched"]


def test_landmark_and_as_of_from_the_command_line(run: Cli) -> None:
    report = run.json("cohort", "survival", "--by", "ctc_trend", "--landmark", "6", "--no-cox")
    assert report["landmark_months"] == 6 and report["patients"]["excluded_before_landmark"] > 0
    assert "182.625 days" in report["definitions"]["landmark"]
    past = run.json("cohort", "survival", "--by", "ctc_trend", "--as-of", "2000-01-01")
    assert past["empty"] is True and past["patients"]["matched"] == 0


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--by", "stage"], 2, ["'stage' is not one of", "ctc_trend"]),
        (["--by", "ctc_trend", "--landmark", "-1"], 2, ["`landmark`", "0 to 600"]),
        (["--by", "ctc_trend", "--landmark", "soon"], 2, ["'soon' is not a valid float"]),
        (["--by", "ctc_trend", "--plot", "km.gif"], 2, ["`plot`", ".svg"]),
        (["--by", "ctc_trend", "--rule", "ge2"], 2, ["'ge2' is not one of"]),
    ],
)
def test_bad_input_is_a_usage_error_not_a_traceback(
    run: Cli, args: list[str], code: int, words: list[str]
) -> None:
    result = run("cohort", "survival", *args, code=code)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_a_filter_that_leaves_no_patient_is_a_marked_empty_result(run: Cli) -> None:
    out = run("cohort", "survival", "--by", "ctc_trend", "--stage-group", "0").stdout
    assert "EMPTY RESULT" in out and "no patient matches the filters" in out


def test_no_ledger_at_the_path_is_not_found(tmp_path: Path) -> None:
    missing = Cli(StoreConfig(sqlite_path=str(tmp_path / "none.db")), actor="researcher.r")
    result = missing("cohort", "survival", "--by", "ctc_trend", code=3)
    assert "no ledger at" in result.stderr and not (tmp_path / "none.db").exists()


def test_plot_is_vector_with_its_parts(run: Cli, tmp_path: Path) -> None:
    svg = tmp_path / "km.svg"
    out = run("cohort", "survival", "--by", "ctc_cleared", "--plot", str(svg), "--no-cox").stdout
    assert f"plot written to {svg}" in out
    text = " ".join(t.strip() for t in ET.parse(svg).getroot().itertext() if t.strip())
    for part in ("Overall survival by ctc_cleared", "log-rank p", "At risk", "Censored",
                 "cleared", "not_cleared", "Months from diagnosis", "95% CI"):  # fmt: skip
        assert part in text, part
    pdf = tmp_path / "km.pdf"
    run("cohort", "survival", "--by", "ctc_trend", "--plot", str(pdf), "--json")
    assert pdf.read_bytes().startswith(b"%PDF")
    empty = tmp_path / "empty.svg"
    run("cohort", "survival", "--by", "ctc_trend", "--stage-group", "0", "--plot", str(empty))
    assert "no patient to analyse" in empty.read_text()


def test_cohort_survival_reads_are_access_logged(run: Cli) -> None:
    run("cohort", "survival", "--by", "histology", "--no-cox")
    entries = run.json("access-log", "--actor", "researcher.r")["entries"]
    assert entries[-1]["resource"] == "cohort-survival" and entries[-1]["patient_id"] is None


# -- REST -----------------------------------------------------------------------------------------


@pytest.fixture
def client(demo_store: StoreConfig) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    with TestClient(create_app(demo_store)) as test_client:
        ledger: OncoLedger = test_client.app.state.ledger
        suffix = uuid.uuid4().hex[:8]
        tokens = {role: ledger.tokens.create(f"{role}-{suffix}", role)
                  for role in ("reader", "clinician")}  # fmt: skip
        yield test_client, tokens


def _get(
    client: tuple[TestClient[Litestar], dict[str, str]], query: str, role: str = "reader"
) -> Any:
    test_client, tokens = client
    return test_client.get(
        f"/api/v1/cohort/survival?{query}", headers={"Authorization": f"Bearer {tokens[role]}"}
    )


def test_rest_survival_matches_the_cli(
    client: tuple[TestClient[Litestar], dict[str, str]], run: Cli
) -> None:
    response = _get(client, "by=ctc_trend&synthetic=true&cox=false")
    assert response.status_code == 200, response.text
    body = response.json()
    cli_report = run.json("cohort", "survival", "--by", "ctc_trend", "--synthetic", "--no-cox")
    assert body == cli_report
    assert body["patients"]["synthetic"] == body["patients"]["analysed"]
    landmark = _get(client, "by=ctc_trend&landmark=6&cox=false").json()
    assert landmark["landmark_months"] == 6


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ("by=stage", 400, "by"),
        ("", 400, "by"),
        ("by=ctc_trend&landmark=-2", 400, "landmark"),
        ("by=ctc_trend&landmark=nan", 400, "landmark"),
        ("by=ctc_trend&rule=ge7", 400, "rule"),
        ("by=ctc_trend&synthetic=maybe", 400, "synthetic"),
    ],
)
def test_rest_bad_input_is_400_naming_the_parameter(
    client: tuple[TestClient[Litestar], dict[str, str]], query: str, status: int, word: str
) -> None:
    response = _get(client, query)
    assert response.status_code == status, response.text
    assert word in json.dumps(response.json())


def test_rest_empty_selection_and_roles(
    client: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    empty = _get(client, "by=histology&stage_group=0")
    assert empty.status_code == 200 and empty.json()["empty"] is True
    assert _get(client, "by=histology&cox=false", role="clinician").status_code == 200
    test_client, _ = client
    assert test_client.get("/api/v1/cohort/survival?by=histology").status_code == 401


def test_rest_plot_is_an_image_of_the_same_analysis(
    client: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    test_client, tokens = client
    headers = {"Authorization": f"Bearer {tokens['reader']}"}
    svg = test_client.get("/api/v1/cohort/survival/plot?by=ctc_cleared", headers=headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    text = " ".join(ET.fromstring(svg.content).itertext())
    assert "Overall survival by ctc_cleared" in text and "At risk" in text
    png = test_client.get("/api/v1/cohort/survival/plot?by=histology&format=png", headers=headers)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    bad = test_client.get("/api/v1/cohort/survival/plot?by=histology&format=gif", headers=headers)
    assert bad.status_code == 400 and "format" in bad.text
