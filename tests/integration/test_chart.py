"""The CTC and stage figure (the case report's Figure 4): its content, files, CLI and REST routes.

The figure is checked by what it says, not by its pixels: the SVG keeps its text as text, and
each drawn element carries an id (`ctc-draw-1`, `stage-2`, `therapy_declined-12`, `caption`),
so a test reads which labels belong to which element. Expected values come from the case
report (shared/seed/case-report.txt), not from the read models.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient

import projections.figure
from api.app import create_app
from cli.main import cli
from domain.ledger.application import StoreConfig
from projections.chart_style import PNG_DPI, WIDTH_IN
from projections.root import OncoLedger

CASE = "CR-ESCC-001"
DEMO = ("CR-ESCC-001", "DEMO-EAC-002", "DEMO-ESCC-003")
SVG = "{http://www.w3.org/2000/svg}"
CAPTION = "CTC count decreasing (4 → 0 per 7.5 mL) while clinical stage unchanged (IVB)"


@pytest.fixture
def demo(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as ledger:
        ledger.record_demo(actor="test")
        yield ledger


def texts(svg: bytes) -> dict[str, list[str]]:
    """Every element id of the SVG -> the lines of text drawn inside it (in document order)."""
    root = ET.fromstring(svg)
    found: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id")
        if gid:
            found[gid] = [t.text or "" for t in group.iter(f"{SVG}text")]
    return found


def all_text(svg: bytes) -> str:
    root = ET.fromstring(svg)
    return " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


def joined(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- the case report's figure ------------------------------------------------------------------


def test_case_report_figure_shows_ctc_4_2_0_on_their_dates(demo: OncoLedger) -> None:
    found = texts(demo.chart(CASE, "svg"))
    draws = [found[f"ctc-draw-{n}"] for n in (1, 2, 3)]
    assert draws == [["4", "2016-08-30"], ["2", "2016-12-30"], ["0", "2017-10-10"]]
    assert "ctc-draw-4" not in found


def test_case_report_figure_keeps_ivb_at_four_assessments(demo: OncoLedger) -> None:
    svg = demo.chart(CASE, "svg")
    found = texts(svg)
    assert [found[f"stage-{n}"] for n in (1, 2, 3, 4)] == [["cT4N2M1"]] * 4
    assert "stage-5" not in found
    # The stage axis runs 0 ... IVB, every group of STAGE_ORDER labelled.
    for group in ("0", "I", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB"):
        assert re.search(rf">{group}</text>", svg.decode())
    data = demo.figure(CASE)
    assert [s.stage_group for s in data.stages] == ["IVB"] * 4
    assert data.stage_levels[-1] == "IVB" and data.stage_levels[0] == "0"


def test_case_report_figure_marks_treatments_declines_and_death(demo: OncoLedger) -> None:
    found = texts(demo.chart(CASE, "svg"))
    kinds = [gid.rsplit("-", 1)[0] for gid in found if re.fullmatch(r"[a-z_]+-\d+", gid)]
    assert kinds.count("chemotherapy") == 1
    assert kinds.count("ablation") == 1
    assert kinds.count("therapy_declined") == 2
    assert kinds.count("radiotherapy") == 0 and kinds.count("surgery") == 0
    labels = {gid: joined(lines) for gid, lines in found.items() if gid.endswith("-label")}
    assert "TP \N{MULTIPLICATION SIGN}2" in labels.values()
    assert "RFA" in labels.values()  # radiofrequency ablation
    # Death: 2018-08 in the report (month only), so drawn at its imputed day and marked "~".
    assert labels["outcome-label"] == "death ~2018-08"
    death = next(m for m in demo.figure(CASE).marks if m.lane == "outcome")
    assert death.day.isoformat() == "2018-08-15" and death.approximate


def test_case_report_figure_caption_is_the_discordance_sentence(demo: OncoLedger) -> None:
    svg = demo.chart(CASE, "svg")
    caption = joined(texts(svg)["caption"])
    assert caption.startswith(CAPTION + ".")
    assert "approximate date" in caption  # several of the report's dates are estimated
    # Drawn in lines, the sentence is also the file's description, whole, for search.
    description = ET.fromstring(svg).find(".//{http://purl.org/dc/elements/1.1/}description")
    assert description is not None and description.text == CAPTION
    assert CAPTION.encode() in svg


def test_threshold_follows_the_rule_and_splits_positive_from_negative(demo: OncoLedger) -> None:
    ge1 = demo.figure(CASE, rule="ge1")
    ge3 = demo.figure(CASE, rule="ge3")
    assert [p.positive for p in ge1.draws] == [True, True, False]
    assert [p.positive for p in ge3.draws] == [True, False, False]
    assert "positive ≥ 3 (ge3)" in all_text(demo.chart(CASE, "svg", rule="ge3"))
    assert "positive ≥ 1 (ge1)" in all_text(demo.chart(CASE, "svg", rule="ge1"))


# -- every demo patient -------------------------------------------------------------------------


@pytest.mark.parametrize("patient_id", DEMO)
def test_each_demo_patient_draws_its_draws_stages_and_caption(
    demo: OncoLedger, patient_id: str
) -> None:
    ctc = demo.read(patient_id, "ctc")
    stage = demo.read(patient_id, "stage")
    found = texts(demo.chart(patient_id, "svg"))
    for n, draw in enumerate(ctc.draws, 1):  # type: ignore[attr-defined]
        assert draw.occurred in found[f"ctc-draw-{n}"]
    for n, assessment in enumerate(stage.history, 1):  # type: ignore[attr-defined]
        assert found[f"stage-{n}"] == [assessment.tnm]
    caption = joined(found["caption"])
    assert caption.startswith(ctc.concordance.summary)  # type: ignore[attr-defined]
    assert patient_id in all_text(demo.chart(patient_id, "svg"))


def test_other_demo_patients_show_what_the_case_report_does_not(demo: OncoLedger) -> None:
    # DEMO-EAC-002: 1, 4 (amended from 40) and 12 CTCs in 10 mL; raw counts shown with volume.
    eac = texts(demo.chart("DEMO-EAC-002", "svg"))
    assert [eac[f"ctc-draw-{n}"][0] for n in (1, 2, 3)] == [
        "1 in 10 mL",
        "4 in 10 mL",
        "12 in 10 mL",
    ]
    assert joined(eac["caption"]).startswith(
        "CTC count increasing (0.75 → 9 per 7.5 mL) and clinical stage worsened (IIB → IVB)"
    )
    # Five imaging events, the CT of 2021-05-12 retracted (another patient's): four drawn.
    imaging = [gid for gid in eac if re.fullmatch(r"imaging-\d+", gid)]
    assert len(imaging) == 4
    # DEMO-ESCC-003: alive, censored at the last follow-up; radiotherapy 50.4 Gy.
    escc = texts(demo.chart("DEMO-ESCC-003", "svg"))
    assert joined(escc["outcome-label"]) == "alive at last follow-up 2024-06-18"
    assert any(joined(v) == "50.4 Gy" for k, v in escc.items() if k.endswith("-label"))


@pytest.mark.parametrize("patient_id", DEMO)
def test_png_is_one_journal_column_at_300_dpi(demo: OncoLedger, patient_id: str) -> None:
    width, height = png_size(demo.chart(patient_id, "png"))
    assert width == round(WIDTH_IN * PNG_DPI) == 1051  # 89 mm
    assert 1.0 < height / width < 1.6  # portrait, but not a poster


def test_pdf_embeds_its_fonts_and_svg_keeps_text(demo: OncoLedger) -> None:
    pdf = demo.chart(CASE, "pdf")
    assert pdf.startswith(b"%PDF-")
    assert b"/FontFile2" in pdf  # TrueType (pdf.fonttype 42), embedded
    assert b"/Subtype /Type3" not in pdf
    svg = demo.chart(CASE, "svg")
    assert b"<text" in svg and b'<use xlink:href="#DejaVu' not in svg  # glyphs not paths


def test_the_same_state_draws_the_same_bytes(demo: OncoLedger) -> None:
    assert demo.chart(CASE, "svg") == demo.chart(CASE, "svg")
    assert demo.chart(CASE, "pdf") == demo.chart(CASE, "pdf")


# -- patients the case report does not have -----------------------------------------------------


def _patient(ledger: OncoLedger, patient_id: str, *events: dict[str, object]) -> None:
    ledger.register(
        patient_id, {"sex": "female", "occurred": "2020-01-02"}, actor="t", source="cli"
    )
    ledger.append(patient_id, list(events), actor="t", source="cli")


def test_labels_are_text_never_markup_or_mathtext(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        _patient(
            ledger,
            "P-ODD",
            {
                "type": "chemotherapy",
                "occurred": "2020-02-01",
                "regimen": "$x^2$ <b>&",
                "courses": 1,
            },
            {
                "type": "surgery",
                "occurred": "2020-03",
                "procedure": "</text><script>",
                "intent": "curative",
            },
        )
        svg = ledger.chart("P-ODD", "svg")
    labels = [joined(v) for k, v in texts(svg).items() if k.endswith("-label")]
    assert "$x^2$ <b>& \N{MULTIPLICATION SIGN}1" in labels and "</text><script>" in labels
    assert b"<script" not in svg


def test_unknown_stage_gets_its_own_level_below_zero(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        _patient(
            ledger,
            "P-UNK",
            {
                "type": "diagnosis_confirmed",
                "occurred": "2020-01-05",
                "histology": "other",
                "grade": "GX",
                "tumor_location": "unknown",
                "basis": "clinical",
                "method": "ct",
            },
            {
                "type": "staging",
                "occurred": "2020-01-06",
                "context": "c",
                "t": "T2",
                "n": "N0",
                "m": "M0",
                "system": "AJCC8",
            },
        )
        data = ledger.figure("P-UNK")
        svg = ledger.chart("P-UNK", "svg")
    assert data.stage_levels[0] == "unknown" and data.stages[0].stage_group == "unknown"
    assert ">unknown</text>" in svg.decode()
    assert texts(svg)["stage-1"] == ["cT2N0M0"]


def test_stage_axis_follows_stage_order(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The axis is derived from STAGE_ORDER, so subgroups added there (IA, IB...) appear."""
    extended = ("0", "I", "IA", "IB", "IC", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IVA", "IVB")
    monkeypatch.setattr(projections.figure, "STAGE_ORDER", extended)
    with OncoLedger(store) as ledger:
        ledger.record_demo(actor="t")
        data = ledger.figure(CASE)
        svg = ledger.chart(CASE, "svg").decode()
    assert data.stage_levels == list(extended)
    for group in ("IVB", "IA", "I", "II", "III"):
        assert f">{group}</text>" in svg


def test_as_of_draws_the_figure_as_it_was_known(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        _patient(ledger, "P-T", {"type": "ctc_count", "occurred": "2020-02-01", "count": 5})
        between = datetime.now(UTC)
        ledger.append(
            "P-T",
            [{"type": "ctc_count", "occurred": "2020-05-01", "count": 1}],
            actor="t",
            source="cli",
        )
        then = texts(ledger.chart("P-T", "svg", as_of=between))
        now = texts(ledger.chart("P-T", "svg"))
    assert "ctc-draw-1" in then and "ctc-draw-2" not in then
    assert now["ctc-draw-2"] == ["1", "2020-05-01"]


def test_a_long_record_draws_without_warnings(store: StoreConfig) -> None:
    """Twenty draws and stagings, a long regimen, lost to follow-up: every label placed,
    none bending the layout (matplotlib would warn, or collapse the axes)."""
    events: list[dict[str, object]] = [
        {
            "type": "diagnosis_confirmed",
            "occurred": "2010-01-02",
            "histology": "adenocarcinoma",
            "grade": "G2",
            "tumor_location": "lower",
            "basis": "histology",
            "method": "biopsy",
        },
        {
            "type": "chemotherapy",
            "occurred": "2011",
            "regimen": "a regimen with a long name " * 3,
            "courses": 12,
            "ended": "2012-06",
        },
        {"type": "follow_up", "occurred": "2015-06", "status": "lost_to_follow_up"},
    ]
    for i in range(20):
        day = f"{2010 + i // 4}-{1 + (i % 4) * 3:02d}"
        events.append({"type": "ctc_count", "occurred": f"{day}-10", "count": (i * 7) % 23})
        events.append(
            {
                "type": "staging",
                "occurred": f"{day}-11",
                "context": "c",
                "t": ("T1", "T2", "T3", "T4b")[i % 4],
                "n": "N1",
                "m": "M0",
                "system": "AJCC8",
            }
        )
    with OncoLedger(store) as ledger:
        ledger.register(
            "P-LONG", {"sex": "male", "occurred": "2009-12-01"}, actor="t", source="cli"
        )
        ledger.append("P-LONG", events, actor="t", source="cli")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            svg = ledger.chart("P-LONG", "svg")
            png = ledger.chart("P-LONG", "png")
    found = texts(svg)
    assert [f"ctc-draw-{n}" in found for n in (1, 20)] == [True, True]
    assert found["stage-20"] == ["cT4bN1M0"]
    assert joined(found["outcome-label"]) == "lost to follow-up ~2015-06"
    chemo = next(
        joined(v)
        for k, v in found.items()
        if k.startswith("chemotherapy-") and k.endswith("-label")
    )
    assert chemo.endswith("\N{HORIZONTAL ELLIPSIS}") and len(chemo) <= 32
    assert png_size(png)[0] == 1051


def test_an_empty_record_still_draws(store: StoreConfig) -> None:
    with OncoLedger(store) as ledger:
        ledger.register("P-E", {"sex": "male", "occurred": "2020-01-02"}, actor="t", source="cli")
        svg = ledger.chart("P-E", "svg")
    text = all_text(svg)
    assert "no CTC draws" in text and "no staging" in text


# -- CLI ----------------------------------------------------------------------------------------


def _cli(store: StoreConfig, tmp: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "ONCOLEDGER_DATABASE_URL": store.database_url,
        "ONCOLEDGER_DATABASE_SCHEMA": store.schema,
        "ONCOLEDGER_ACTOR": "author.a",
        "ONCOLEDGER_CTC_RULE": None,
    }
    db = store.sqlite_path or str(tmp / "unused.db")
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    with contextlib.chdir(work):
        result = CliRunner().invoke(cli, ["--db", db, *args], env=env)
    listing = sorted(p.name for p in work.iterdir())
    return result.exit_code, result.stdout + "|" + " ".join(listing), result.stderr


def test_cli_chart_writes_the_default_svg_and_prints_its_path(
    demo: OncoLedger, store: StoreConfig, tmp_path: Path
) -> None:
    code, out, err = _cli(store, tmp_path, "chart", CASE)
    assert code == 0, err
    printed, listing = out.split("|")
    assert printed.strip() == f"{CASE}-ctc-stage.svg"
    assert listing.split() == [f"{CASE}-ctc-stage.svg"]  # nothing else left behind
    entries = demo.access_log.query(CASE, "author.a").entries
    assert [(e.channel, e.resource) for e in entries] == [("cli", "chart")]


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_cli_chart_out_picks_the_format(
    demo: OncoLedger, store: StoreConfig, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"fig4.{suffix}"
    code, _, err = _cli(store, tmp_path, "chart", CASE, "--out", str(out), "--rule", "ge3")
    assert code == 0, err
    content = out.read_bytes()
    magic = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}[suffix]
    assert content.startswith(magic)


def test_cli_chart_json(demo: OncoLedger, store: StoreConfig, tmp_path: Path) -> None:
    out = tmp_path / "f.png"
    code, stdout, err = _cli(store, tmp_path, "chart", CASE, "--out", str(out), "--json")
    assert code == 0, err
    doc = json.loads(stdout.split("|")[0])
    assert doc == {
        "patient_id": CASE,
        "path": str(out),
        "format": "png",
        "bytes": out.stat().st_size,
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("chart", "NOPE"), 3, "patient NOPE is not registered"),
        (("chart", CASE, "--out", "fig.gif"), 2, "must end in .svg, .png, .pdf"),
        (("chart", CASE, "--rule", "ge2"), 2, "'ge2' is not one of"),
        (("chart", CASE, "--as-of", "yesterday"), 2, "not an ISO 8601 timestamp"),
        (("chart", CASE, "--out", "/no/such/dir/f.svg"), 2, "no directory"),
    ],
)
def test_cli_chart_refuses_bad_input_and_writes_nothing(
    demo: OncoLedger,
    store: StoreConfig,
    tmp_path: Path,
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    exit_code, out, err = _cli(store, tmp_path, *args)
    assert exit_code == code
    assert message in err
    assert out.split("|")[1].strip() == ""  # no file written
    assert "Traceback" not in err


# -- REST ---------------------------------------------------------------------------------------


@pytest.fixture
def client(store: StoreConfig) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    with TestClient(create_app(store)) as test_client:
        ledger: OncoLedger = test_client.app.state.ledger
        ledger.record_demo(actor="test")
        token = ledger.tokens.create("reader-1", "reader")
        yield test_client, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("fmt", "media_type", "magic"),
    [
        ("svg", "image/svg+xml", b"<?xml"),
        ("png", "image/png", b"\x89PNG"),
        ("pdf", "application/pdf", b"%PDF"),
    ],
)
def test_api_serves_the_chart_to_a_reader(
    client: tuple[TestClient[Litestar], dict[str, str]], fmt: str, media_type: str, magic: bytes
) -> None:
    test_client, auth = client
    response = test_client.get(f"/api/v1/patients/{CASE}/chart.{fmt}", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content.startswith(magic)
    assert response.headers["etag"] == '"27"'
    assert f'filename="{CASE}-ctc-stage.{fmt}"' in response.headers["content-disposition"]
    ledger: OncoLedger = test_client.app.state.ledger
    entries = ledger.access_log.query(CASE, "reader-1").entries
    assert [(e.channel, e.resource) for e in entries] == [("api", "chart")]


def test_api_chart_svg_content_and_rule(
    client: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    test_client, auth = client
    svg = test_client.get(f"/api/v1/patients/{CASE}/chart.svg?rule=ge5", headers=auth).content
    assert "positive ≥ 5 (ge5)" in all_text(svg)
    assert joined(texts(svg)["caption"]).startswith(CAPTION)
    png = test_client.get(f"/api/v1/patients/{CASE}/chart.png", headers=auth).content
    assert png_size(png)[0] == 1051


def test_api_chart_errors(client: tuple[TestClient[Litestar], dict[str, str]]) -> None:
    test_client, auth = client
    url = f"/api/v1/patients/{CASE}/chart.svg"
    assert test_client.get(url).status_code == 401
    missing = test_client.get("/api/v1/patients/NOPE/chart.png", headers=auth)
    assert (
        missing.status_code == 404 and missing.json()["detail"] == "patient NOPE is not registered"
    )
    bad = test_client.get(url + "?rule=ge2", headers=auth)
    assert bad.status_code == 400 and bad.json()["extra"]["field"] == "rule"
    bad_time = test_client.get(url + "?as_of=soon", headers=auth)
    assert bad_time.status_code == 400 and bad_time.json()["extra"]["field"] == "as_of"
    unchanged = test_client.get(url, headers={**auth, "If-None-Match": '"27"'})
    assert unchanged.status_code == 304 and unchanged.content == b""
