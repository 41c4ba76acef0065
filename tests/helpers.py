"""The one REST helper (`Api`) and the one command-line helper (`Cli`) every adapter test uses,
and the request bodies the API tests share. Not a test module: the fixtures over these live in
tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

import httpx
from click.testing import CliRunner, Result
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from cli.main import cli
from domain.ledger.application import StoreConfig
from projections.root import OncoLedger

ROLES = ("reader", "clinician", "auditor", "admin")
V1 = "/api/v1"


@dataclass
class Api:
    """A running application, its store, and a bearer token per role.

    `base` is put before every url given to `get` and `post` ("" : full paths; V1 : paths under
    /api/v1). A `bytes` body is sent as it is, as JSON."""

    client: TestClient[Litestar]
    tokens: dict[str, str]
    base: str = ""

    @property
    def ledger(self) -> OncoLedger:
        ledger: OncoLedger = self.client.app.state.ledger
        return ledger

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, url: str, role: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(role), **kwargs.pop("headers", {})}
        return self.client.get(f"{self.base}{url}", headers=headers, **kwargs)

    def post(
        self, url: str, body: Any = None, role: str = "admin", **kwargs: Any
    ) -> httpx.Response:
        return self._post(f"{self.base}{url}", body, role, **kwargs)

    def _post(self, url: str, body: Any, role: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(role), **kwargs.pop("headers", {})}
        if isinstance(body, bytes):
            headers.setdefault("Content-Type", "application/json")
            kwargs["content"] = body
        elif body is not None:
            kwargs["json"] = body
        return self.client.post(url, headers=headers, **kwargs)

    def register(self, patient_id: str = "P1", **fields: Any) -> httpx.Response:
        body = {"patient_id": patient_id, "sex": "male", "birth_year": 1940}
        body |= {"occurred": "2016-04-26"} | fields
        response = self._post(f"{V1}/patients", body, "admin")
        assert response.status_code == 201, response.text
        return response

    def append(
        self, patient_id: str, body: dict[str, Any], role: str = "admin", **kwargs: Any
    ) -> httpx.Response:
        return self._post(f"{V1}/patients/{patient_id}/events", body, role, **kwargs)

    def version(self, patient_id: str) -> int:
        return self.ledger.version(patient_id)


def start_api(
    config: StoreConfig, *, base: str = "", raise_server_exceptions: bool = True
) -> Iterator[Api]:
    """An application over `config` with one token per role, for the length of a fixture."""
    app = create_app(config)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        ledger: OncoLedger = client.app.state.ledger
        tokens = {role: ledger.tokens.create(f"{role}-1", role) for role in ROLES}
        yield Api(client, tokens, base)


class Cli:
    """Runs `oncoledger` against one store, as a user would type it.

    Each call checks the exit code: `code` (0 unless given), or the helper's `expect` when the
    call does not say; `None` checks nothing (the caller looks at the result)."""

    def __init__(
        self, config: StoreConfig, *, actor: str = "nurse.a", expect: int | None = 0
    ) -> None:
        self.config = config
        self.expect = expect
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {
            "ONCOLEDGER_DATABASE_URL": config.database_url,
            "ONCOLEDGER_DATABASE_SCHEMA": config.schema,
            "ONCOLEDGER_ACTOR": actor,
            "ONCOLEDGER_CTC_RULE": None,
            "ONCOLEDGER_CIPHER_KEY": config.cipher_key,
        }

    def __call__(
        self,
        *args: str,
        input: bytes | str | None = None,
        code: int | EllipsisType | None = ...,
    ) -> Result:
        result = self.runner.invoke(
            cli, ["--db", self.config.sqlite_path or "unused.db", *args], input=input, env=self.env
        )
        expected = self.expect if code is ... else code
        if expected is not None:
            assert result.exit_code == expected, (
                f"exit {result.exit_code} != {expected}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}\n{result.exception!r}"
            )
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self(*args, "--json", input=input).stdout)

    def stored(self) -> int:
        """How many events the store holds."""
        with OncoLedger(self.config) as system:
            return sum(1 for _ in system.ledger.scan())

    def behind(self) -> int:
        """How many events the stored read models have yet to take in."""
        return int(self.json("projections", "status")["behind"])


def ctc(occurred: str, count: int, **fields: Any) -> dict[str, Any]:
    return {"type": "ctc_count", "occurred": occurred, "count": count} | fields


def diagnosis() -> dict[str, Any]:
    return {
        "type": "diagnosis_confirmed",
        "occurred": "2016-05-17",
        "histology": "squamous_cell_carcinoma",
    }


def staging(occurred: str = "2016-05-31") -> dict[str, Any]:
    return {"type": "staging", "occurred": occurred, "t": "T4", "n": "N2", "m": "M1"}


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """An error response: the status, Litestar's JSON shape, and a detail naming `words`."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], body["detail"]
    return body
