"""Cohort survival by group (issue 15): statistics against an independent computation.

The fixture is 20 patients with exact dates in three CTC-trend groups, ties between groups and
between a death and a censoring on the same day. Kaplan-Meier, Greenwood / log(-log) intervals,
medians, at-risk counts and the log-rank statistic are computed here again by the textbook
formulas (Kalbfleisch & Prentice; Collett, "Modelling Survival Data in Medical Research", ch. 2)
with plain Python, and compared with the product's output to 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger
from projections.survival_groups import holm

MONTH = 30.4375
Z = 1.959963984540054
DX = date(2019, 3, 4)

# (trend, CTC counts at day 10 and day 40, end day, died)
GROUPS: dict[str, tuple[tuple[int, int], list[tuple[int, bool]]]] = {
    "decreasing": (
        (5, 1),
        [(100, True), (200, False), (300, True), (300, False), (450, True), (600, False),
         (800, True), (1000, False)],
    ),
    "increasing": (
        (1, 6),
        [(60, True), (90, True), (90, True), (150, False), (200, True), (250, True),
         (400, False), (500, True)],
    ),
    "stable": ((2, 2), [(120, True), (365, False), (730, True), (1100, False)]),
}  # fmt: skip


def day(offset: int, start: date = DX) -> str:
    return (start + timedelta(days=offset)).isoformat()


def record_patient(
    ol: OncoLedger,
    pid: str,
    *,
    counts: tuple[int, ...] = (),
    draw_days: tuple[int, ...] = (10, 40),
    end: int,
    died: bool,
    start: date = DX,
    diagnosis: bool = True,
    staging: tuple[str, str, str] | None = ("T4", "N2", "M1"),
) -> None:
    events: list[dict[str, Any]] = [
        {"type": "patient_registered", "occurred": day(-5, start), "sex": "male"}
    ]
    if diagnosis:
        events.append(
            {
                "type": "diagnosis_confirmed",
                "occurred": day(0, start),
                "histology": "squamous_cell_carcinoma",
            }
        )
        if staging:
            t, n, m = staging
            events.append({"type": "staging", "occurred": day(2, start), "t": t, "n": n, "m": m})
    for count, offset in zip(counts, draw_days, strict=False):
        events.append({"type": "ctc_count", "occurred": day(offset, start), "count": count})
    if died:
        events.append({"type": "death", "occurred": day(end, start), "cause": "cancer"})
    else:
        events.append({"type": "follow_up", "occurred": day(end, start), "status": "alive"})
    ol.append(pid, events, actor="test", source="cli")


@pytest.fixture
def ledger(store: StoreConfig) -> Iterator[OncoLedger]:
    with OncoLedger(store) as ol:
        yield ol


@pytest.fixture
def cohort(ledger: OncoLedger) -> OncoLedger:
    for trend, (counts, patients) in GROUPS.items():
        for i, (end, died) in enumerate(patients):
            record_patient(ledger, f"{trend[:3].upper()}-{i}", counts=counts, end=end, died=died)
    return ledger


# -- the independent computation -----------------------------------------------------------------


def kaplan_meier(data: list[tuple[int, bool]]) -> list[dict[str, float]]:
    """Product-limit estimate at each distinct time (days), Greenwood variance, and the
    exponential Greenwood interval: theta = log(-log S), se = sqrt(V) / |log S|."""
    rows = [{"t": 0.0, "s": 1.0, "lo": 1.0, "hi": 1.0, "n": len(data), "d": 0, "c": 0}]
    s, greenwood = 1.0, 0.0
    for t in sorted({t for t, _ in data}):
        n = sum(1 for u, _ in data if u >= t)
        d = sum(1 for u, e in data if u == t and e)
        c = sum(1 for u, e in data if u == t and not e)
        if d:
            s *= 1 - d / n
            greenwood += d / (n * (n - d)) if n > d else 0.0
        if 0 < s < 1:
            theta, se = math.log(-math.log(s)), math.sqrt(greenwood) / abs(math.log(s))
            lo, hi = math.exp(-math.exp(theta + Z * se)), math.exp(-math.exp(theta - Z * se))
        elif s == 1:
            lo = hi = 1.0
        else:
            lo = hi = 0.0
        rows.append({"t": t / MONTH, "s": s, "lo": lo, "hi": hi, "n": n, "d": d, "c": c})
    return rows


def first_below_half(rows: list[dict[str, float]], key: str) -> float | None:
    return next((r["t"] for r in rows if r[key] <= 0.5), None)


def logrank(groups: list[list[tuple[int, bool]]]) -> float:
    """The k-sample log-rank statistic (O - E)' V^-1 (O - E) over the first k - 1 groups."""
    k = len(groups)
    times = sorted({t for g in groups for t, e in g if e})
    o_minus_e = [0.0] * k
    v = [[0.0] * k for _ in range(k)]
    for t in times:
        at_risk = [sum(1 for u, _ in g if u >= t) for g in groups]
        deaths = [sum(1 for u, e in g if u == t and e) for g in groups]
        n, d = sum(at_risk), sum(deaths)
        for j in range(k):
            o_minus_e[j] += deaths[j] - d * at_risk[j] / n
            if n > 1:
                for m in range(k):
                    delta = 1.0 if j == m else 0.0
                    v[j][m] += d * (n - d) / (n - 1) * at_risk[j] / n * (delta - at_risk[m] / n)
    size = k - 1
    a = [[*row[:size], o_minus_e[i]] for i, row in enumerate(v[:size])]
    for col in range(size):  # Gauss-Jordan: solve V x = (O - E)
        pivot = a[col][col]
        a[col] = [x / pivot for x in a[col]]
        for r in range(size):
            if r != col:
                factor = a[r][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return sum(o_minus_e[i] * a[i][size] for i in range(size))


def chi2_sf(x: float, df: int) -> float:
    """Closed forms: df 1 is erfc(sqrt(x/2)), df 2 is exp(-x/2)."""
    return math.erfc(math.sqrt(x / 2)) if df == 1 else math.exp(-x / 2)


# -- the product against it ----------------------------------------------------------------------


def test_kaplan_meier_agrees_with_the_textbook_formulas(cohort: OncoLedger) -> None:
    report = cohort.cohort_survival(by="ctc_trend", with_cox=False).report
    assert report.patients.analysed == 20 and report.patients.events == 12
    assert [g.group for g in report.groups] == ["decreasing", "increasing", "stable"]
    for group in report.groups:
        data = GROUPS[group.group][1]
        expected = kaplan_meier(data)
        assert (group.n, group.events, group.censored) == (
            len(data),
            sum(e for _, e in data),
            sum(not e for _, e in data),
        )
        assert len(group.curve) == len(expected)
        for point, row in zip(group.curve, expected, strict=True):
            assert point.months == pytest.approx(row["t"], abs=1e-9)
            assert point.survival == pytest.approx(row["s"], abs=1e-6)
            assert point.ci95[0] == pytest.approx(row["lo"], abs=1e-6)
            assert point.ci95[1] == pytest.approx(row["hi"], abs=1e-6)
            assert (point.at_risk, point.events, point.censored) == (row["n"], row["d"], row["c"])
        median = group.median_months
        for got, key in ((median.estimate, "s"), (median.ci95[0], "lo"), (median.ci95[1], "hi")):
            want = first_below_half(expected, key)
            assert (got is None) == (want is None)
            if want is not None:
                assert got == pytest.approx(want, abs=1e-6)
        for milestone in group.survival:
            last_before = [r for r in expected if r["t"] <= milestone.months][-1]
            if milestone.months > max(t for t, _ in data) / MONTH and last_before["s"] > 0:
                assert milestone.estimate is None  # follow-up ended before t, S > 0
                continue
            assert milestone.estimate == pytest.approx(last_before["s"], abs=1e-6)
            assert milestone.ci95[0] == pytest.approx(last_before["lo"], abs=1e-6)


def test_known_values_of_the_fixture(cohort: OncoLedger) -> None:
    """Two numbers worked by hand, so the formulas above are checked too."""
    groups = {
        g.group: g for g in cohort.cohort_survival(by="ctc_trend", with_cox=False).report.groups
    }
    increasing = groups["increasing"]
    # deaths at 60 (8 at risk), 90 (two of 7): S = 7/8 * 5/7 = 0.625; 200: 4 at risk -> 0.46875
    assert [p.survival for p in increasing.curve[:3]] == pytest.approx([1.0, 0.875, 0.625])
    assert increasing.curve[4].survival == pytest.approx(0.625 * 3 / 4)
    assert increasing.median_months.estimate == pytest.approx(200 / MONTH)
    # The death and the censoring on day 300 (decreasing): the censored patient is at risk.
    decreasing = groups["decreasing"]
    at_300 = next(p for p in decreasing.curve if p.months == pytest.approx(300 / MONTH))
    assert (at_300.at_risk, at_300.events, at_300.censored) == (6, 1, 1)


def test_log_rank_overall_and_pairwise_agree_with_the_formula(cohort: OncoLedger) -> None:
    report = cohort.cohort_survival(by="ctc_trend", with_cox=False).report
    data = [GROUPS[name][1] for name in ("decreasing", "increasing", "stable")]
    statistic = logrank(data)
    assert report.logrank.df == 2
    assert report.logrank.statistic == pytest.approx(statistic, abs=1e-6)
    assert report.logrank.p == pytest.approx(chi2_sf(statistic, 2), abs=1e-6)
    pairs = {p.groups: p for p in report.pairwise}
    assert set(pairs) == {
        ("decreasing", "increasing"),
        ("decreasing", "stable"),
        ("increasing", "stable"),
    }
    raw = {}
    for (a, b), pair in pairs.items():
        stat = logrank([GROUPS[a][1], GROUPS[b][1]])
        raw[(a, b)] = chi2_sf(stat, 1)
        assert pair.statistic == pytest.approx(stat, abs=1e-6)
        assert pair.p == pytest.approx(raw[(a, b)], abs=1e-6)
    ordered = sorted(raw, key=raw.__getitem__)
    running = 0.0
    for rank, pair in enumerate(ordered):  # Holm: (m - rank) * p, monotone, capped at 1
        running = max(running, min(1.0, (3 - rank) * raw[pair]))
        assert pairs[pair].p_holm == pytest.approx(running, abs=1e-9)


def test_holm_adjustment_matches_a_worked_example() -> None:
    # Holm (1979): p = 0.01, 0.04, 0.03, 0.005 -> 0.03, 0.06, 0.06, 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_every_report_states_its_definitions(cohort: OncoLedger) -> None:
    report = cohort.cohort_survival(by="stage_group", with_cox=False).report
    for key in ("time_zero", "time", "event", "censoring", "exclusion", "partial_dates",
                "landmark", "ci_method", "median", "grouping"):  # fmt: skip
        assert report.definitions[key]
    assert "30.4375" in report.definitions["time"]
    assert report.definitions["landmark"].startswith("none used")
    assert report.landmark_months is None


def test_the_vectorised_estimators_agree_with_lifelines() -> None:
    """`projections.km` replaces lifelines' KM and log-rank for speed: same numbers."""
    import numpy as np
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    from projections.km import kaplan_meier, logrank

    rng = np.random.default_rng(15)
    months = np.round(rng.exponential(20, 3000), 1)  # rounded: many ties
    months[:5] = 0.0  # deaths and censorings at time zero
    dead = rng.random(3000) < 0.6
    groups = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), 3000)
    for name in ("a", "b"):
        mine = groups == name
        ours = kaplan_meier(months[mine], dead[mine])
        theirs = KaplanMeierFitter().fit(months[mine], dead[mine])
        table = theirs.event_table
        assert np.allclose(ours.times, table.index.to_numpy(), atol=0)
        assert (ours.at_risk == table["at_risk"].to_numpy()).all()
        assert (ours.events == table["observed"].to_numpy()).all()
        assert (ours.censored == table["censored"].to_numpy()).all()
        assert np.allclose(ours.survival, theirs.survival_function_.iloc[:, 0], atol=1e-12)
        assert np.allclose(ours.lower, theirs.confidence_interval_.iloc[:, 0], atol=1e-9)
        assert np.allclose(ours.upper, theirs.confidence_interval_.iloc[:, 1], atol=1e-9)
    statistic, df, p = logrank(months, dead, groups)
    reference = multivariate_logrank_test(months, groups, dead)
    assert df == reference.degrees_of_freedom == 3
    assert statistic == pytest.approx(reference.test_statistic, abs=1e-9)
    assert p == pytest.approx(reference.p_value, abs=1e-12)


# -- the rules --------------------------------------------------------------------------------


def test_censoring_at_the_last_known_contact(ledger: OncoLedger) -> None:
    record_patient(ledger, "A", counts=(4, 2), end=400, died=False)
    # Lost to follow-up at day 250 after an imaging on day 230: censored at 250.
    record_patient(ledger, "B", counts=(4, 2), end=200, died=False)
    ledger.append(
        "B",
        [
            {
                "type": "imaging",
                "occurred": day(230),
                "modality": "ct",
                "region": "chest",
                "finding": "stable",
            },
            {"type": "follow_up", "occurred": day(250), "status": "lost_to_follow_up"},
        ],
        actor="t",
        source="cli",
    )
    # A death entered in error and retracted: censored at the last event in force.
    record_patient(ledger, "C", counts=(4, 2), end=300, died=True)
    death = ledger.history("C")[-1]
    assert death.type == "death" and death.event_id is not None
    ledger.retract("C", death.event_id, reason="wrong patient", actor="t", source="cli")
    group = ledger.cohort_survival(by="ctc_trend", with_cox=False).report.groups[0]
    assert (group.group, group.n, group.events, group.censored) == ("decreasing", 3, 0, 3)
    censored_at = sorted(p.months for p in group.curve if p.censored)
    assert censored_at == pytest.approx([40 / MONTH, 250 / MONTH, 400 / MONTH])


def test_patients_without_a_diagnosis_date_are_excluded_and_counted(ledger: OncoLedger) -> None:
    record_patient(ledger, "DX", counts=(3, 1), end=300, died=True)
    record_patient(ledger, "NODX", counts=(3, 1), end=100, died=True, diagnosis=False)
    # Diagnosed by a malignant biopsy only: included, time zero at the biopsy.
    ledger.append(
        "BX",
        [
            {"type": "patient_registered", "occurred": day(-5), "sex": "female"},
            {
                "type": "biopsy",
                "occurred": day(0),
                "site": "esophagus",
                "method": "endoscopic",
                "histology": "adenocarcinoma",
            },
            {"type": "death", "occurred": day(90)},
        ],
        actor="t",
        source="cli",
    )
    report = ledger.cohort_survival(by="histology", with_cox=False).report
    assert report.patients.matched == 3
    assert report.patients.excluded_no_diagnosis_date == 1
    assert report.patients.analysed == 2
    groups = {g.group: g for g in report.groups}
    assert groups.keys() == {"squamous_cell_carcinoma", "not_recorded"}
    assert groups["not_recorded"].curve[-1].months == pytest.approx(90 / MONTH)


def test_partial_dates_are_imputed_and_counted(ledger: OncoLedger) -> None:
    ledger.append(
        "PD",
        [
            {"type": "patient_registered", "occurred": "2019-01-02", "sex": "male"},
            {
                "type": "diagnosis_confirmed",
                "occurred": "2019-03",
                "histology": "squamous_cell_carcinoma",
            },
            {"type": "death", "occurred": "2019-06-15"},
        ],
        actor="t",
        source="cli",
    )
    report = ledger.cohort_survival(by="ctc_trend", with_cox=False).report
    assert report.patients.approximate_times == 1
    # 2019-03 is imputed as 2019-03-15: 92 days to 2019-06-15
    assert report.groups[0].curve[-1].months == pytest.approx(92 / MONTH)


def test_landmark_groups_by_what_was_known_then_and_restarts_the_clock(
    ledger: OncoLedger,
) -> None:
    # Second draw on day 40: before a 1-month landmark (30.4375 days)? No: after it.
    record_patient(ledger, "LATE", counts=(5, 1), draw_days=(10, 40), end=400, died=True)
    # Both draws by day 20: decreasing at the landmark.
    record_patient(ledger, "EARLY", counts=(5, 1), draw_days=(10, 20), end=500, died=False)
    # Died on day 25, before the landmark: excluded.
    record_patient(ledger, "GONE", counts=(5, 1), draw_days=(10, 20), end=25, died=True)
    # Followed exactly to the landmark day (30) and no further: not beyond it, excluded.
    record_patient(ledger, "EDGE", counts=(5, 1), draw_days=(10, 20), end=30, died=False)

    plain = ledger.cohort_survival(by="ctc_trend", with_cox=False).report
    assert {g.group: g.n for g in plain.groups} == {"decreasing": 4}

    report = ledger.cohort_survival(by="ctc_trend", landmark_months=1, with_cox=False).report
    assert report.landmark_months == 1
    assert report.patients.excluded_before_landmark == 2
    groups = {g.group: g for g in report.groups}
    assert {name: g.n for name, g in groups.items()} == {"decreasing": 1, "insufficient_data": 1}
    assert groups["insufficient_data"].curve[-1].months == pytest.approx(400 / MONTH - 1)
    assert groups["decreasing"].curve[-1].months == pytest.approx(500 / MONTH - 1)
    assert "30.4375 days" in report.definitions["landmark"]
    assert not any("immortal" in w for w in report.warnings)
    assert any("immortal" in w for w in plain.warnings)


def test_ctc_rule_changes_who_cleared(ledger: OncoLedger) -> None:
    record_patient(ledger, "R", counts=(3, 0), end=300, died=True)
    ge1 = ledger.cohort_survival(by="ctc_cleared", with_cox=False).report
    ge5 = ledger.cohort_survival(by="ctc_cleared", rule="ge5", with_cox=False).report
    assert [g.group for g in ge1.groups] == ["cleared"]
    assert [g.group for g in ge5.groups] == ["not_cleared"]
    assert ge5.rule == "ge5"


def test_as_of_reads_the_cohort_as_it_was_recorded(ledger: OncoLedger) -> None:
    record_patient(ledger, "T", counts=(5, 1), end=200, died=False)
    then = ledger.history("T")[-1].recorded_at
    assert then is not None
    ledger.append("T", [{"type": "death", "occurred": day(300)}], actor="t", source="cli")
    now = ledger.cohort_survival(by="ctc_trend", with_cox=False).report
    past = ledger.cohort_survival(by="ctc_trend", as_of=then, with_cox=False).report
    assert (now.patients.events, now.groups[0].curve[-1].months) == (1, pytest.approx(300 / MONTH))
    assert (past.patients.events, past.groups[0].curve[-1].months) == (
        0,
        pytest.approx(200 / MONTH),
    )
    assert past.as_of == then and "as recorded up to" in past.definitions["as_of"]
    # Filters apply to the cohort row as it was then: alive then, dead now.
    alive = {"survival_status": ["alive"]}
    assert ledger.cohort_survival(by="ctc_trend", filters=alive).report.patients.matched == 0
    alive_then = ledger.cohort_survival(by="ctc_trend", as_of=then, filters=alive).report
    assert alive_then.patients.matched == 1
    real_then = ledger.cohort_survival(by="ctc_trend", as_of=then, filters={"synthetic": True})
    assert real_then.report.patients.matched == 0


def test_filters_select_the_cohort_and_an_empty_selection_is_marked(cohort: OncoLedger) -> None:
    staged = cohort.cohort_survival(by="ctc_trend", filters={"stage_group": ["IVB"]}).report
    assert staged.patients.analysed == 20
    empty = cohort.cohort_survival(by="ctc_trend", filters={"stage_group": ["I"]}).report
    assert empty.empty is True and empty.groups == [] and empty.patients.matched == 0
    assert empty.logrank.statistic is None and empty.logrank.note
    assert "no patient matches the filters" in empty.warnings[0]


def test_bad_input_is_refused_naming_the_field(cohort: OncoLedger) -> None:
    with pytest.raises(ValidationFailed, match="`by` 'stage'") as by:
        cohort.cohort_survival(by="stage")
    assert by.value.field == "by"
    with pytest.raises(ValidationFailed, match="`landmark`") as landmark:
        cohort.cohort_survival(by="ctc_trend", landmark_months=-3)
    assert landmark.value.field == "landmark"
    with pytest.raises(ValidationFailed, match="unknown filter 'colour'"):
        cohort.cohort_survival(by="ctc_trend", filters={"colour": "red"})
    with pytest.raises(ValidationFailed, match="rule"):
        cohort.cohort_survival(by="ctc_cleared", rule="ge2")


def test_a_one_patient_group_is_reported_and_warned_about(cohort: OncoLedger) -> None:
    record_patient(cohort, "ONE", counts=(3, 7, 2), draw_days=(10, 20, 30), end=100, died=True)
    report = cohort.cohort_survival(by="ctc_trend").report
    one = next(g for g in report.groups if g.group == "fluctuating")
    assert one.n == 1 and "one patient" in one.warnings[0]
    assert [p.survival for p in one.curve] == [1.0, 0.0]
    assert report.logrank.df == 3 and report.logrank.p is not None


def test_cox_model_is_adjusted_for_stage_and_checks_proportional_hazards(
    ledger: OncoLedger,
) -> None:
    from domain.demo.cohort import record_cohort

    record_cohort(ledger.ledger, 200, actor="t")
    ledger.views.catch_up()
    cox = ledger.cohort_survival(by="ctc_trend").report.cox
    assert cox is not None and cox.note is None
    assert cox.exposure == "ctc_trend" and cox.covariate == "stage_at_diagnosis"
    terms = {h.term: h for h in cox.hazard_ratios}
    # The synthetic cohort is drawn with a rising CTC count at 2.0 / 0.45 times the hazard of
    # a falling one, and stage IVB at about 6 times stage I.
    rising = terms["ctc_trend=increasing"]
    assert rising.reference == "decreasing"  # the largest group of this cohort
    assert rising.hazard_ratio is not None and rising.hazard_ratio > 2
    low, high = rising.ci95
    assert low is not None and high is not None and low < rising.hazard_ratio < high
    assert terms["stage_at_diagnosis=IVB"].reference == "I"
    assert terms["stage_at_diagnosis=IVB"].hazard_ratio > 2  # type: ignore[operator]
    assert {c.term for c in cox.proportional_hazards} == set(terms)
    assert isinstance(cox.proportional_hazards_ok, bool)
    assert cox.lr_test_ctc_added.df == sum(
        1 for h in cox.hazard_ratios if h.variable == "ctc_trend"
    )
    assert cox.concordance_with_ctc is not None and cox.concordance_stage_only is not None


def test_proportional_hazards_test_on_a_sample_of_a_large_cohort_says_so(
    ledger: OncoLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain.demo.cohort import record_cohort
    from projections import survival_cox

    record_cohort(ledger.ledger, 150, actor="t")
    ledger.views.catch_up()
    monkeypatch.setattr(survival_cox, "PH_SAMPLE", 100)
    cox = ledger.cohort_survival(by="ctc_cleared").report.cox
    assert cox is not None and cox.n > 100
    assert "random sample of 100 patients" in (cox.proportional_hazards_note or "")
    assert cox.proportional_hazards  # still tested, on the sample


def test_cox_on_a_degenerate_cohort_says_why_it_was_not_fitted(ledger: OncoLedger) -> None:
    record_patient(ledger, "A", counts=(5, 1), end=100, died=True)
    cox = ledger.cohort_survival(by="ctc_trend").report.cox
    assert cox is not None and cox.hazard_ratios == [] and "fewer than two" in (cox.note or "")


def test_stage_groups_follow_stage_order_and_unknown_ones_come_last(ledger: OncoLedger) -> None:
    record_patient(ledger, "S4", counts=(5, 1), end=100, died=True, staging=("T4", "N2", "M1"))
    record_patient(ledger, "S1", counts=(5, 1), end=200, died=True, staging=("T1", "N0", "M0"))
    record_patient(ledger, "SX", counts=(5, 1), end=300, died=True, staging=("TX", "N0", "M0"))
    record_patient(ledger, "S0", counts=(5, 1), end=300, died=False, staging=None)
    groups = [g.group for g in ledger.cohort_survival(by="stage_group").report.groups]
    assert groups == ["I", "IVB", "unknown", "not_staged"]


def test_erased_or_unindexed_patients_are_in_no_group(cohort: OncoLedger) -> None:
    with cohort.views.db.transaction(write=True) as cur:
        cur.execute("DELETE FROM ol_patients WHERE patient_id = ?", ("DEC-0",))
    report = cohort.cohort_survival(by="ctc_trend", with_cox=False).report
    assert report.patients.analysed == 19
    landmark = cohort.cohort_survival(by="ctc_trend", landmark_months=1, with_cox=False).report
    assert landmark.patients.matched == 19


def test_views_built_before_the_survival_rows_existed_are_rebuilt(store: StoreConfig) -> None:
    with OncoLedger(store) as ol:
        record_patient(ol, "OLD", counts=(5, 1), end=100, died=True)
        with ol.views.db.transaction(write=True) as cur:
            cur.execute("DROP TABLE ol_survival")
    with OncoLedger(store) as ol:
        report = ol.cohort_survival(by="ctc_trend", with_cox=False).report
        assert report.patients.analysed == 1 and report.groups[0].events == 1


def test_rebuilt_views_give_the_same_analysis(cohort: OncoLedger) -> None:
    before = cohort.cohort_survival(by="concordance").report
    cohort.views.rebuild()
    assert cohort.cohort_survival(by="concordance").report == before


def test_synthetic_filter_on_both_databases(cohort: OncoLedger) -> None:
    record_patient(cohort, "SYN-00001", counts=(5, 1), end=100, died=True)
    record_patient(cohort, "DEMO-X", counts=(5, 1), end=100, died=True)
    synthetic = cohort.patients(filters={"synthetic": True}, count=True)
    assert [r.patient_id for r in synthetic.patients] == ["DEMO-X", "SYN-00001"]
    assert cohort.patients(filters={"synthetic": False}, count=True).total == 20
    real = cohort.cohort_survival(by="ctc_trend", filters={"synthetic": False}).report
    assert (real.patients.analysed, real.patients.synthetic) == (20, 0)
    both = cohort.cohort_survival(by="ctc_trend", with_cox=False).report
    assert (both.patients.analysed, both.patients.synthetic) == (22, 2)
    assert any("2 of 22 patients are synthetic" in w for w in both.warnings)


def test_current_data_read_only_the_stored_rows(
    cohort: OncoLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current-data path reads the cohort index and the survival rows: no event, neither
    from the event store nor from the views' change audit."""
    before = cohort.cohort_survival(by="ctc_trend").report

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the event store was read")

    for name in ("load", "history", "stored_events", "scan", "select_notifications"):
        target = cohort.ledger if hasattr(cohort.ledger, name) else cohort.ledger.recorder
        monkeypatch.setattr(target, name, refuse)
    monkeypatch.setattr(cohort.ledger.recorder, "select_notifications", refuse)
    with cohort.views.db.transaction(write=True) as cur:
        cur.execute("DELETE FROM ol_events")
    assert cohort.cohort_survival(by="ctc_trend").report == before
    # The recomputing paths do read the events: from the ledger's streams (the views keep no
    # copy of the bodies).
    with pytest.raises(AssertionError, match="the event store was read"):
        cohort.cohort_survival(by="ctc_trend", landmark_months=1)
