"""Where the ledger lives (`StoreConfig`) and the library settings that say so."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from domain.errors import ValidationFailed
from domain.ledger.event_index import recorder_topic


@dataclass(frozen=True)
class StoreConfig:
    """Where the ledger lives: one SQLite file, or a PostgreSQL database (and schema)."""

    sqlite_path: str | None = "oncoledger.db"
    database_url: str | None = None
    schema: str | None = None
    cipher_key: str | None = None

    @classmethod
    def from_env(cls, db: str | None = None) -> StoreConfig:
        return cls(
            sqlite_path=db or os.environ.get("ONCOLEDGER_DB") or "oncoledger.db",
            database_url=os.environ.get("ONCOLEDGER_DATABASE_URL") or None,
            schema=os.environ.get("ONCOLEDGER_DATABASE_SCHEMA") or None,
            cipher_key=os.environ.get("ONCOLEDGER_CIPHER_KEY") or None,
        )

    @property
    def is_postgres(self) -> bool:
        return self.database_url is not None

    def library_env(self) -> dict[str, str]:
        env: dict[str, str] = {
            "ORIGINATOR_ID_TYPE": "text",
            "APPLICATION_RECORDER_TOPIC": recorder_topic(self.is_postgres),
        }
        if self.database_url:
            url = urlparse(self.database_url)
            if url.scheme not in ("postgresql", "postgres"):
                raise ValidationFailed(
                    "ONCOLEDGER_DATABASE_URL must start with postgresql://",
                    field="ONCOLEDGER_DATABASE_URL",
                )
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": (url.path or "/").lstrip("/") or "postgres",
                "POSTGRES_HOST": url.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(url.port or 5432),
                "POSTGRES_USER": unquote(url.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(url.password or ""),
                "POSTGRES_POOL_SIZE": "10",
                "POSTGRES_MAX_OVERFLOW": "20",
                "POSTGRES_CONNECT_TIMEOUT": "10",
            }
            if self.schema:
                env["POSTGRES_SCHEMA"] = self.schema
        else:
            env |= {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path or "oncoledger.db",
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        if self.cipher_key:
            check_key_format(self.cipher_key)
            env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
            env["CIPHER_KEY"] = self.cipher_key
        return env


def check_key_format(key: str) -> None:
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        size = -1
    if size not in (16, 24, 32):
        raise ValidationFailed(
            "ONCOLEDGER_CIPHER_KEY must be a base64 AES key of 16, 24 or 32 bytes "
            "(e.g. the output of `openssl rand -base64 32`)",
            field="ONCOLEDGER_CIPHER_KEY",
            rule="cipher_key",
        )
