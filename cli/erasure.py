"""`oncoledger patient erase` and `oncoledger keys rotate` (crypto-shredding, issue 12)."""

from __future__ import annotations

import click

from cli import render
from cli.params import json_option
from cli.session import SOURCE, Session, pass_session
from projections.root import migrate_store


@click.command("erase")
@click.argument("patient_id")
@click.option("--reason", required=True, help="Why (e.g. the legal basis); kept in the trail.")
@click.option("--yes", is_flag=True, help="Confirm: the patient's clinical data is destroyed.")
@json_option
@pass_session
def patient_erase(session: Session, patient_id: str, reason: str, yes: bool, as_json: bool) -> None:
    """Erase PATIENT_ID: destroy its data key, so its events can never be decrypted again.

    The chain stays verifiable (from the stored hashes); the erasure (who, when, why) is kept.
    Idempotent. Needs the master key (ONCOLEDGER_CIPHER_KEY) and --yes."""
    if not yes:
        raise click.UsageError(
            f"erasing {patient_id} destroys its clinical data for good: add --yes to confirm"
        )
    erasure = session.open().erase(patient_id, actor=session.actor, reason=reason, channel=SOURCE)
    if as_json:
        render.emit_json(
            {
                "patient_id": erasure.patient_id,
                "erased_at": erasure.erased_at,
                "erased_by": erasure.erased_by,
                "reason": erasure.reason,
                "created": erasure.created,
            }
        )
        return
    state = "erased" if erasure.created else "already erased"
    click.echo(
        f"{state}: {erasure.patient_id} on {erasure.erased_at} by {erasure.erased_by} "
        f"({erasure.reason}). Backups that still hold its wrapped key would undo this: "
        "expire them too."
    )


@click.group()
def keys() -> None:
    """The master key and the per-patient data keys."""


@keys.command("rotate")
@click.option(
    "--new-key",
    envvar="ONCOLEDGER_NEW_CIPHER_KEY",
    required=True,
    help="The new master key, base64 (env ONCOLEDGER_NEW_CIPHER_KEY; "
    "e.g. `openssl rand -base64 32`).",
)
@pass_session
def keys_rotate(session: Session, new_key: str) -> None:
    """Re-wrap every patient's data key under a new master key (the events are not touched)."""
    count = session.open().rotate_keys(new_key, actor=session.actor, channel=SOURCE)
    click.echo(
        f"re-wrapped {count} patient key(s) under the new master key: from now on set "
        "ONCOLEDGER_CIPHER_KEY to it (the old key no longer opens this store)"
    )


@click.command()
@json_option
@pass_session
def migrate(session: Session, as_json: bool) -> None:
    """Seal events written before per-patient keys under their patients' own keys.

    For a store in clear (give it a key: ONCOLEDGER_CIPHER_KEY, or `<db>.key`) or encrypted
    under the master key itself. Content and hashes stay exactly as they were, so chains and
    digests kept before still verify. All or nothing; running it again does nothing."""
    report = migrate_store(session.config)
    if as_json:
        render.emit_json(report)
        return
    before = "under the master key" if report.was_encrypted else "in clear"
    click.echo(
        f"migrated: {report.sealed} event(s) of {report.patients} patient(s) were {before} and "
        f"are now sealed under per-patient keys ({report.events} events in the store). "
        f"{report.unsalted} event(s) predate per-event salts: their content and chains verify "
        "as before, but after an erasure a guessed payload of them could be confirmed against "
        "its stored hash."
    )
