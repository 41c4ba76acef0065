"""Erasure through the REST API and the CLI (issue 12): admin only, 410 Gone afterwards, exit 3."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from helpers import V1, Api, Cli, assert_error, diagnosis, start_api

from domain.ledger.application import StoreConfig

KEEP, GONE = "P-KEEP", "P-GONE"


@pytest.fixture
def keyed_api(store: StoreConfig) -> Iterator[Api]:
    yield from start_api(replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode()))


def test_erasure_over_http(keyed_api: Api) -> None:
    api = keyed_api
    for patient_id in (KEEP, GONE):
        api.register(patient_id, note="lives near the old mill")
        assert api.append(patient_id, diagnosis()).status_code == 201
    url = f"{V1}/patients/{GONE}/erasure"
    # roles other than admin are refused, and nothing is erased
    for role in ("reader", "clinician", "auditor"):
        assert_error(api.post(url, {"reason": "request"}, role=role), 403)
    assert api.get(f"{V1}/patients/{GONE}").status_code == 200
    # a body without a reason is a validation error naming it
    assert api.post(url, {}, role="admin").status_code == 400
    # when an admin erases the patient
    first = api.post(url, {"reason": "GDPR Art. 17"}, role="admin")
    assert first.status_code == 201, first.text
    assert first.json()["erased_by"] == "admin-1"
    # then every clinical read answers 410 Gone, saying why
    for path in (
        f"/patients/{GONE}",
        f"/patients/{GONE}/events",
        f"/patients/{GONE}/timeline",
        f"/patients/{GONE}/export",
        f"/patients/{GONE}/fhir",
        f"/patients/{GONE}/chart.svg",
    ):
        assert_error(api.get(f"{V1}{path}"), 410, "erased", "GDPR Art. 17")
    # and writes are refused with 410 too
    assert_error(api.append(GONE, diagnosis()), 410, "erased")
    # and the cohort leaves it out; the other patient reads as before
    cohort = api.get(f"{V1}/patients").json()["patients"]
    assert [row["patient_id"] for row in cohort] == [KEEP]
    assert api.get(f"{V1}/patients/{KEEP}/events").status_code == 200
    # and auditors still see the envelopes, and the erasure itself
    audit = api.get(f"{V1}/patients/{GONE}/audit", role="auditor")
    assert audit.status_code == 200 and len(audit.json()["entries"]) == 2
    erasures = api.get(f"{V1}/erasures", role="auditor").json()
    assert [(e["patient_id"], e["reason"]) for e in erasures] == [(GONE, "GDPR Art. 17")]
    verify = api.get(f"{V1}/patients/{GONE}/verify", role="auditor").json()
    assert verify["ok"] and verify["erased"] == [GONE]
    # and the live feed carries no content of it
    feed = api.get(f"{V1}/events", role="auditor").json()["events"]
    gone = [e for e in feed if e["patient_id"] == GONE]
    assert gone and all(set(e) == {"position", "patient_id", "version", "erased"} for e in gone)
    # and erasing again answers 200 with the first erasure
    again = api.post(url, {"reason": "again"}, role="admin")
    assert again.status_code == 200 and again.json()["reason"] == "GDPR Art. 17"


def test_erasure_from_the_command_line(store: StoreConfig) -> None:
    run = Cli(replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode()))
    run("patient", "register", GONE, "--sex", "female", "--on", "2020-01-02")
    # without --yes nothing is erased (usage error)
    refused = run("patient", "erase", GONE, "--reason", "request", code=2)
    assert "--yes" in refused.stderr
    assert run("history", GONE, code=0)
    # with --yes the patient is erased, and reads exit 3 with the reason
    done = run("patient", "erase", GONE, "--reason", "GDPR Art. 17", "--yes")
    assert "erased" in done.stdout and "Backups" in done.stdout
    read = run("history", GONE, code=3)
    assert "erased" in read.stderr and "GDPR Art. 17" in read.stderr
    # and verify passes, naming it erased
    assert "erased: " + GONE in run("verify").stdout
    # and again is a no-op that says so
    assert "already erased" in run("patient", "erase", GONE, "--reason", "x", "--yes").stdout


def test_erasure_without_a_master_key_is_refused(store: StoreConfig) -> None:
    run = Cli(store)
    run("patient", "register", GONE, "--sex", "female", "--on", "2020-01-02")
    refused = run("patient", "erase", GONE, "--reason", "request", "--yes", code=2)
    assert "ONCOLEDGER_CIPHER_KEY" in refused.stderr
    assert run("history", GONE, code=0)


def test_rotating_the_master_key_from_the_command_line(store: StoreConfig) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    run = Cli(replace(store, cipher_key=old))
    run("patient", "register", KEEP, "--sex", "female", "--on", "2020-01-02")
    assert "re-wrapped 1 patient key" in run("keys", "rotate", "--new-key", new).stdout
    assert "not this store's key" in run("history", KEEP, code=2).stderr
    assert Cli(replace(store, cipher_key=new))("history", KEEP, code=0)


def test_the_patient_page_of_an_erased_patient_answers_410(keyed_api: Api) -> None:
    api = keyed_api
    api.register(GONE)
    api.register(KEEP)
    assert api.post(f"{V1}/patients/{GONE}/erasure", {"reason": "request"}).status_code == 201
    # given a signed-in browser (the pages take a session, not a bearer token)
    client = api.client
    assert client.get("/login?next=/patients").status_code == 200
    signed_in = client.post(
        "/login",
        data={"token": api.tokens["reader"], "next": "/patients"},
        headers={"Origin": "http://testserver.local", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    # then the erased patient's page is Gone, the cohort page leaves it out
    page = client.get(f"/patients/{GONE}", follow_redirects=False)
    assert page.status_code == 410 and "erased" in page.text
    cohort = client.get("/patients", follow_redirects=False)
    assert cohort.status_code == 200
    assert f'href="/patients/{KEEP}"' in cohort.text
    assert f'href="/patients/{GONE}"' not in cohort.text


def test_migrate_from_the_command_line(store: StoreConfig) -> None:
    plain = Cli(store)
    plain("patient", "register", KEEP, "--sex", "female", "--on", "2020-01-02")
    keyed = Cli(replace(store, cipher_key=base64.b64encode(os.urandom(32)).decode()))
    assert "created unencrypted" in keyed("history", KEEP, code=2).stderr
    done = keyed("migrate")
    assert "migrated: 1 event(s) of 1 patient(s) were in clear" in done.stdout
    assert keyed.json("migrate")["sealed"] == 0
    assert len(keyed.json("history", KEEP)) == 1
