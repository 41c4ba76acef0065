"""The master key file `<db>.key`: made by whatever first creates a SQLite store without a key.

Encryption at rest is the default: `init`, `demo` and `serve` on a SQLite store that does not
exist yet, with no ONCOLEDGER_CIPHER_KEY set, write a random 256-bit master key (base64) to
`<db>.key` with 0600 permissions and say where it is. Every later opening of that store reads
it when ONCOLEDGER_CIPHER_KEY is unset. PostgreSQL has no file to put it beside: set the key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

from domain.errors import ValidationFailed
from domain.ledger.application import StoreConfig


def key_file(config: StoreConfig) -> Path | None:
    if config.is_postgres or not config.sqlite_path:
        return None
    path = Path(config.sqlite_path)
    return path.with_name(path.name + ".key")


def with_key_file(config: StoreConfig) -> StoreConfig:
    """`config` with the key of `<db>.key` when no key is set and that file exists."""
    path = key_file(config)
    if config.cipher_key or path is None or not path.exists():
        return config
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            f"the master key file {path} cannot be read ({exc}): fix its permissions, or set "
            "ONCOLEDGER_CIPHER_KEY",
            field="ONCOLEDGER_CIPHER_KEY",
            rule="cipher_key",
        ) from None
    return replace(config, cipher_key=key)


def create_key_file(config: StoreConfig) -> tuple[StoreConfig, str | None]:
    """For a SQLite store not made yet and no key set: write `<db>.key` (0600) and return the
    config with it and the sentence to tell the user; otherwise `config` as it is."""
    path = key_file(config)
    if config.cipher_key or path is None or Path(config.sqlite_path or "").exists():
        return with_key_file(config), None
    if path.exists():
        return with_key_file(config), None
    key = base64.b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    message = (
        f"created the master key {path.resolve()} (0600): this store's data cannot be read "
        "without it. Back it up, but apart from the data's backups: a backup holding both "
        "would undo an erasure when restored (and anyone holding both reads everything)."
    )
    return replace(config, cipher_key=key), message
