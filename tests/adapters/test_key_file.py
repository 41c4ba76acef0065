"""The master key file `<db>.key` (issue 12): encryption at rest without setting anything."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from helpers import Cli

from domain.ledger.application import StoreConfig
from projections.root import OncoLedger


def test_init_creates_the_key_file_and_every_later_command_uses_it(
    sqlite_store: StoreConfig,
) -> None:
    run = Cli(sqlite_store)
    assert sqlite_store.sqlite_path is not None
    key_file = Path(sqlite_store.sqlite_path + ".key")
    # when a store is created without a key
    made = run("init")
    # then a 0600 key file is made beside it, and the user is told where and how to keep it
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file.resolve()) in made.stderr and "apart" in made.stderr
    # and the store is encrypted under it: later commands (and processes) read it from there
    run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-02", "--note", "probe-n0te")
    assert b"probe-n0te" not in Path(sqlite_store.sqlite_path).read_bytes()
    assert len(run.json("history", "P1")) == 1
    with OncoLedger(sqlite_store) as system:
        assert system.ledger.keys is not None
    # and a second init does not replace the key
    key = key_file.read_text()
    assert run("init").stderr == ""
    assert key_file.read_text() == key


def test_a_missing_key_file_says_how_to_supply_the_key(sqlite_store: StoreConfig) -> None:
    run = Cli(sqlite_store)
    run("init")
    assert sqlite_store.sqlite_path is not None
    Path(sqlite_store.sqlite_path + ".key").unlink()
    refused = run("history", "P1", code=2)
    assert "this store is encrypted: set ONCOLEDGER_CIPHER_KEY" in refused.stderr


def test_a_wrong_key_is_a_clear_error_at_start_up(sqlite_store: StoreConfig) -> None:
    Cli(sqlite_store)("init")
    wrong = Cli(replace(sqlite_store, cipher_key="A" * 43 + "="))
    refused = wrong("history", "P1", code=2)
    assert "not this store's key" in refused.stderr and "Traceback" not in refused.stderr


def test_an_existing_store_without_a_key_gets_no_key_file(sqlite_store: StoreConfig) -> None:
    run = Cli(sqlite_store)
    run("patient", "register", "P1", "--sex", "male", "--on", "2020-01-02")  # no init: plain
    run("init")
    assert sqlite_store.sqlite_path is not None
    assert not Path(sqlite_store.sqlite_path + ".key").exists()
    assert len(run.json("history", "P1")) == 1
