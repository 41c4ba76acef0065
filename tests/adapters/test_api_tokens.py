"""API tokens: the store (hashed, shown once, revocable) and `oncoledger token` / `serve`."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Cli

from cli import serve as serve_module
from cli.serve import REUSE_PORT_LOOP, WORKER_HEALTHCHECK_SECONDS, reuse_port_supported
from domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from domain.ledger import tokens as tokens_module
from domain.ledger.application import StoreConfig
from domain.ledger.tokens import ALLOWED, ROLES, Principal, TokenStore, authorize
from projections.root import OncoLedger


@pytest.fixture
def tokens(store: StoreConfig) -> Iterator[TokenStore]:
    with OncoLedger(store) as ledger:
        yield ledger.tokens


def test_a_token_authenticates_as_its_name_and_role(tokens: TokenStore) -> None:
    secret = tokens.create("dr.li", "clinician")
    assert secret.startswith("olk_")
    assert tokens.authenticate(secret) == Principal("dr.li", "clinician")
    assert tokens.authenticate(secret + "x") is None
    assert tokens.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert tokens.authenticate("") is None
    assert tokens.authenticate("olk_garbage") is None
    (info,) = tokens.list()
    assert (info.name, info.role, info.active) == ("dr.li", "clinician", True)
    assert info.key_id in secret


def test_a_verified_token_is_remembered_briefly_and_forgotten_when_any_is_revoked(
    store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OncoLedger(store) as ledger, OncoLedger(store) as other:
        secret = ledger.tokens.create("dr.li", "clinician")
        kept = ledger.tokens.create("ann", "reader")
        assert ledger.tokens.verified(secret) is None  # never asked the store yet
        assert ledger.tokens.authenticate(secret) == Principal("dr.li", "clinician")
        assert ledger.tokens.authenticate(kept) == Principal("ann", "reader")
        assert ledger.tokens.verified(secret) == Principal("dr.li", "clinician")
        assert ledger.tokens.verified(secret + "x") is None  # remembered by the whole token
        # A revocation by any store of this process: nothing verified before it is trusted.
        other.tokens.revoke("dr.li")
        assert ledger.tokens.verified(secret) is None
        assert ledger.tokens.verified(kept) is None
        assert ledger.tokens.authenticate(secret) is None
        assert ledger.tokens.authenticate(kept) == Principal("ann", "reader")
        # A revocation by another process is seen once RECHECK seconds have passed.
        later = time.monotonic() + tokens_module.RECHECK
        monkeypatch.setattr(tokens_module.time, "monotonic", lambda: later)
        assert ledger.tokens.verified(kept) is None


def test_a_revoked_token_is_refused_at_once_although_it_was_just_admitted(
    store: StoreConfig,
) -> None:
    from litestar.testing import TestClient

    from api.app import create_app

    with OncoLedger(store) as ledger:
        secret = ledger.tokens.create("dr.li", "clinician")
    with TestClient(create_app(store, projector=False)) as client:
        headers = {"Authorization": f"Bearer {secret}"}
        body = {"patient_id": "P1", "occurred": "2016-04-26", "sex": "male", "birth_year": 1940}
        answer = client.post("/api/v1/patients", json=body, headers=headers)
        assert answer.status_code == 201
        assert client.get("/api/v1/patients/P1", headers=headers).status_code == 200
        with OncoLedger(store) as ledger:
            ledger.tokens.revoke("dr.li")
        refused = client.get("/api/v1/patients/P1", headers=headers)
        assert refused.status_code == 401
        assert "unknown or revoked" in refused.json()["detail"]


def test_secrets_are_random_and_never_stored(sqlite_store: StoreConfig) -> None:
    with OncoLedger(sqlite_store) as ledger:
        secrets = {ledger.tokens.create(f"user{i}", "reader") for i in range(5)}
    assert len(secrets) == 5
    with sqlite3.connect(sqlite_store.sqlite_path or "") as conn:
        rows = conn.execute("SELECT * FROM ol_tokens").fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    for secret in secrets:
        assert secret not in stored
        assert secret.split("_", 2)[2] not in stored


def test_revoked_tokens_stop_working_and_the_name_can_be_reused(tokens: TokenStore) -> None:
    old = tokens.create("nurse", "reader")
    with pytest.raises(Conflict):
        tokens.create("nurse", "admin")
    revoked = tokens.revoke("nurse")
    assert revoked.revoked_at is not None
    assert tokens.authenticate(old) is None
    with pytest.raises(NotFound):
        tokens.revoke("nurse")
    new = tokens.create("nurse", "clinician")
    assert tokens.authenticate(new) == Principal("nurse", "clinician")
    assert [(t.name, t.active) for t in tokens.list()] == [("nurse", False), ("nurse", True)]
    assert [t.role for t in tokens.list(include_revoked=False)] == ["clinician"]


@pytest.mark.parametrize(("name", "role"), [("", "reader"), ("a b", "reader"), ("ok", "root")])
def test_bad_names_and_roles_are_refused(tokens: TokenStore, name: str, role: str) -> None:
    with pytest.raises(ValidationFailed):
        tokens.create(name, role)
    assert tokens.list() == []


def test_the_first_token_is_made_only_on_a_ledger_that_never_had_one(tokens: TokenStore) -> None:
    first = tokens.create_first("demo-admin", "admin")
    assert first is not None
    assert tokens.authenticate(first) == Principal("demo-admin", "admin")
    assert tokens.create_first("demo-admin", "admin") is None
    tokens.revoke("demo-admin")
    assert tokens.create_first("demo-admin", "admin") is None


def test_roles_follow_spec_section_8() -> None:
    can = {role: {p for p, roles in ALLOWED.items() if role in roles} for role in ROLES}
    assert can == {
        "reader": {"read"},
        "clinician": {"read", "write"},
        "auditor": {"read", "audit"},
        "admin": {"read", "write", "audit", "erase"},
    }
    with pytest.raises(Forbidden, match=r"role clinician or admin needed .* has role auditor"):
        authorize(Principal("ann", "auditor"), "write", action="record")


# -- the command line ---------------------------------------------------------------------------


def test_token_commands(run: Cli, store: StoreConfig) -> None:
    made = run("token", "create", "dr.li", "--role", "clinician")
    secret = made.stdout.strip()
    assert secret.startswith("olk_") and "\n" not in secret
    assert "shown only now" in made.stderr
    as_json = json.loads(run("token", "create", "ann", "--role", "auditor", "--json").stdout)
    assert as_json["name"] == "ann" and as_json["role"] == "auditor"

    listed = json.loads(run("token", "list", "--json").stdout)["tokens"]
    assert [(t["name"], t["role"], t["revoked_at"]) for t in listed] == [
        ("dr.li", "clinician", None),
        ("ann", "auditor", None),
    ]
    assert secret not in run("token", "list").stdout
    assert "dr.li" in run("token", "list").stdout

    assert "revoked" in run("token", "revoke", "dr.li").stdout
    with OncoLedger(store) as ledger:
        assert ledger.tokens.authenticate(secret) is None
        assert ledger.tokens.authenticate(as_json["token"]) == Principal("ann", "auditor")

    assert "already exists" in run("token", "create", "ann", "--role", "reader", code=4).stderr
    assert "no active token" in run("token", "revoke", "nobody", code=3).stderr
    assert "root" in run("token", "create", "x", "--role", "root", code=2).stderr


def test_serve_makes_a_first_admin_token_and_passes_the_store_to_workers(
    run: Cli, store: StoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **kwargs: Any) -> None:
        # What a worker process will read to open the store.
        calls.append({"app": app, **kwargs, "store": StoreConfig.from_env()})

    monkeypatch.setattr("uvicorn.run", fake_run)
    for name in ("ONCOLEDGER_DB", "ONCOLEDGER_DATABASE_SCHEMA"):
        monkeypatch.setenv(name, "another")  # restored after the test; serve overwrites it

    first = run("serve", "--port", "8123", "--workers", "3")
    assert "http://127.0.0.1:8123/schema" in first.stdout
    secret = next(w for w in first.stdout.split() if w.startswith("olk_"))
    (call,) = calls
    seen = call.pop("store")
    assert call == {
        "app": "api.app:create_app",
        "factory": True,
        "host": "127.0.0.1",
        "port": 8123,
        "workers": 3,
        # Several workers: a socket of each worker's own (Linux), and time to start up.
        **({"loop": REUSE_PORT_LOOP} if reuse_port_supported() else {}),
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    assert (seen.database_url, seen.schema) == (store.database_url, store.schema)
    if store.sqlite_path:
        assert seen.sqlite_path == os.path.abspath(store.sqlite_path)
    with OncoLedger(store) as ledger:
        assert ledger.tokens.authenticate(secret) == Principal("demo-admin", "admin")

    again = run("serve", "--host", "0.0.0.0")
    assert "olk_" not in again.stdout
    assert "http://127.0.0.1:8000/schema" in again.stdout


def test_base_url() -> None:
    assert serve_module.base_url("::1", 80) == "http://[::1]:80"
    assert serve_module.base_url("example.org", 8000) == "http://example.org:8000"
