"""API tokens (SPEC §8): made with the CLI, shown once, stored hashed; each names an actor, a role.

A token reads `olk_<key_id>_<secret>`: `key_id` is 12 hex digits stored in the clear to find the
row, `secret` is 32 random bytes (256 bits). Only SHA-256 of the whole token is stored, and it
is compared in constant time. A slow or salted hash (scrypt, PBKDF2) protects guessable
passwords; a 256-bit random secret cannot be guessed, so its SHA-256 is as safe to keep and
costs microseconds, not the tens of milliseconds per request a slow hash would add to the API.

Tokens live beside the ledger (`open_db(config, side="ledger")`), never in the rebuildable
views. A revoked token stays listed with its `revoked_at`; its name may be given to a new token.

A token this process verified is remembered for `RECHECK` seconds, by its SHA-256 (`verified`):
the API then admits it without a database read (no thread hop per request). A revocation made
in this process takes effect at once (every store of the process forgets what it verified); one
made by another process (`oncoledger token revoke` while a server runs) within `RECHECK`
seconds, the same bound as an erasure made elsewhere (`domain.ledger.patient_keys.RECHECK`).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Literal, NamedTuple, get_args

from msgspec import Struct

from domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from domain.ledger.db import Cursor, LedgerStore, PostgresDb, SqliteDb

Role = Literal["reader", "clinician", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

Permission = Literal["read", "write", "audit", "erase"]
# SPEC §8: reader reads; clinician also records and corrects; auditor also audits; admin all.
ALLOWED: dict[Permission, tuple[Role, ...]] = {
    "read": ("reader", "clinician", "auditor", "admin"),
    "write": ("clinician", "admin"),
    "audit": ("auditor", "admin"),
    "erase": ("admin",),  # crypto-shredding a patient (issue 12)
}

PREFIX = "olk_"
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_TOKEN = re.compile(r"^olk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ol_tokens (
        key_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT)""",
    # One active token per name: the name is the actor recorded on every event it appends.
    "CREATE UNIQUE INDEX IF NOT EXISTS ol_tokens_active_name ON ol_tokens (name) "
    "WHERE revoked_at IS NULL",
)
_COLUMNS = "name, role, key_id, created_at, revoked_at"

RECHECK = 1.0  # seconds a verified token is trusted without asking the store again
_MAX_VERIFIED = 10_000


class _Revocations:
    """How many revocations this process has made: a verified token remembered before the
    latest one is asked for again, whichever store of the process revoked."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self.count += 1


_REVOCATIONS = _Revocations()


class Principal(NamedTuple):
    """Who a valid token speaks for: the actor's name and the token's role."""

    name: str
    role: Role


class TokenInfo(Struct, frozen=True, kw_only=True):
    """A token as listed: everything but the secret."""

    name: str
    role: Role
    key_id: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenStore(LedgerStore):
    """The table `ol_tokens`: create (secret returned once), list, revoke, authenticate."""

    SCHEMA = SCHEMA
    LOCK_KEY = 7316003

    def __init__(self, db: SqliteDb | PostgresDb) -> None:
        # SHA-256 of a verified token -> (its principal, when verified, revocations by then).
        self._verified: dict[str, tuple[Principal, float, int]] = {}
        super().__init__(db)

    # -- writing ---------------------------------------------------------------------------------

    def create(self, name: str, role: str) -> str:
        """Make a token for `name` with `role`; return its secret, which is not kept anywhere."""
        secret = self._create(name, role, only_if_empty=False)
        assert secret is not None
        return secret

    def create_first(self, name: str, role: str) -> str | None:
        """Make a token only if there has never been one (a fresh ledger); else None."""
        return self._create(name, role, only_if_empty=True)

    def _create(self, name: str, role: str, *, only_if_empty: bool) -> str | None:
        _check_name(name)
        checked_role = check_role(role)
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self.db.transaction(write=True) as cur:
            self._lock(cur)
            if only_if_empty:
                cur.execute("SELECT 1 FROM ol_tokens LIMIT 1")
                if cur.fetchone() is not None:
                    return None
            cur.execute("SELECT 1 FROM ol_tokens WHERE name = ? AND revoked_at IS NULL", (name,))
            if cur.fetchone() is not None:
                raise Conflict(
                    f"a token named {name!r} already exists; revoke it first or pick another name",
                    field="name",
                    rule="token_name_unique",
                )
            cur.execute(
                "INSERT INTO ol_tokens (key_id, name, role, token_hash, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, name, checked_role, _hash(secret), _now()),
            )
        return secret

    def revoke(self, name: str) -> TokenInfo:
        """Revoke the active token named `name`; it stops working at once (in a server of
        another process, within `RECHECK` seconds)."""
        _REVOCATIONS.bump()  # before and after: no check in between may remember it as valid
        with self.db.transaction(write=True) as cur:
            self._lock(cur)
            cur.execute(
                f"SELECT {_COLUMNS} FROM ol_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no active token named {name!r}", field="name")
            revoked_at = _now()
            cur.execute(
                "UPDATE ol_tokens SET revoked_at = ? WHERE key_id = ?", (revoked_at, row[2])
            )
        _REVOCATIONS.bump()
        return _info((*row[:4], revoked_at))

    def _lock(self, cur: Cursor) -> None:
        # SQLite's write transaction already holds the database lock; PostgreSQL needs the
        # table's, so a check-then-insert cannot race another process doing the same.
        if self.db.is_postgres:
            cur.execute("LOCK TABLE ol_tokens IN SHARE ROW EXCLUSIVE MODE")

    # -- reading ---------------------------------------------------------------------------------

    def list(self, *, include_revoked: bool = True) -> builtins.list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self.db.transaction() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM ol_tokens{where} ORDER BY created_at, name")
            rows = cur.fetchall()
        return [_info(row) for row in rows]

    def verified(self, token: str) -> Principal | None:
        """The principal of a token this process verified less than `RECHECK` seconds ago and
        since which it revoked none; else None (then `authenticate` asks the store). No I/O."""
        known = self._verified.get(_hash(token))
        if known is None:
            return None
        principal, checked, revocations = known
        if revocations != _REVOCATIONS.count or time.monotonic() - checked >= RECHECK:
            return None
        return principal

    def authenticate(self, token: str) -> Principal | None:
        """The principal of an active token; None for anything else (unknown, revoked, garbage).
        Always asks the store; a token found active is remembered (`verified`)."""
        match = _TOKEN.match(token)
        digest = _hash(token)
        if match is None:
            return None
        revocations, checked = _REVOCATIONS.count, time.monotonic()
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT name, role, token_hash FROM ol_tokens "
                "WHERE key_id = ? AND revoked_at IS NULL",
                (match.group(1),),
            )
            row = cur.fetchone()
        # Compared even when the key id is unknown, so timing tells nothing about the table.
        matches = hmac.compare_digest(str(row[2]) if row else "0" * 64, digest)
        if row is None or not matches:
            self._verified.pop(digest, None)
            return None
        principal = Principal(str(row[0]), check_role(str(row[1])))
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        self._verified[digest] = (principal, checked, revocations)
        return principal


def key_id_of(token: str) -> str | None:
    """The clear-text key id of a well-formed token (it names the token's row), else None."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def authorize(principal: Principal, permission: Permission, *, action: str) -> None:
    """Raise `Forbidden` unless the principal's role allows `permission` (SPEC §8)."""
    allowed = ALLOWED[permission]
    if principal.role not in allowed:
        raise Forbidden(
            f"role {' or '.join(allowed)} needed to {action}; "
            f"token {principal.name!r} has role {principal.role}",
            field="Authorization",
            rule="role",
        )


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ValidationFailed(
        f"`role` {role!r} is not a role; roles: {', '.join(ROLES)}", field="role", rule="role"
    )


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValidationFailed(
            f"token name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ - (it is recorded as the "
            "actor of every event the token appends)",
            field="name",
            rule="token_name",
        )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _info(row: tuple[object, ...] | list[object]) -> TokenInfo:
    name, role, key_id, created_at, revoked_at = row
    return TokenInfo(
        name=str(name),
        role=check_role(str(role)),
        key_id=str(key_id),
        created_at=datetime.fromisoformat(str(created_at)),
        revoked_at=datetime.fromisoformat(str(revoked_at)) if revoked_at else None,
    )
