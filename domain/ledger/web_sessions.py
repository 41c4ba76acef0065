"""Browser sign-in sessions: a cookie stands for an API token the user typed once.

The cookie holds a random 256-bit session secret; the table `ol_web_sessions` keeps only its
SHA-256 and the key id of the token it was opened with. Every lookup joins the token's row and
requires it to be active, so revoking a token ends its sessions at their next request (the
session row is then deleted). Sessions also end after `LIFETIME` and at sign-out.

Sessions live beside the tokens (ledger side), never in the rebuildable views, so every
worker process of the server sees the same ones.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from domain.instants import iso_utc
from domain.ledger.db import LedgerStore, PostgresDb, SqliteDb
from domain.ledger.tokens import Principal, TokenStore, check_role, key_id_of

LIFETIME = timedelta(hours=12)  # one clinical shift; then sign in again
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ol_web_sessions (
        session_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ol_web_sessions_key ON ol_web_sessions (key_id)",
)


class WebSession(NamedTuple):
    """A signed-in browser: who it is (the token's actor and role)."""

    principal: Principal


class WebSessionStore(LedgerStore):
    """Open, resolve and end browser sessions; each is tied to one active API token."""

    SCHEMA = SCHEMA
    LOCK_KEY = 7316004

    def __init__(self, db: SqliteDb | PostgresDb, tokens: TokenStore) -> None:
        super().__init__(db)
        self.tokens = tokens

    def sign_in(self, token: str) -> tuple[str, WebSession] | None:
        """A new session for a valid token: (cookie secret, session); None for a bad token."""
        principal = self.tokens.authenticate(token)
        key_id = key_id_of(token)
        if principal is None or key_id is None:
            return None
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM ol_web_sessions WHERE expires_at <= ?", (iso_utc(now),))
            cur.execute(
                "INSERT INTO ol_web_sessions (session_hash, key_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_hash(secret), key_id, iso_utc(now), iso_utc(now + LIFETIME)),
            )
        return secret, WebSession(principal)

    def resolve(self, secret: str | None) -> WebSession | None:
        """The session a cookie names, if it is current and its token still active."""
        if not secret or len(secret) > 128:
            return None
        session_hash = _hash(secret)
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT t.name, t.role, s.expires_at FROM ol_web_sessions s "
                "JOIN ol_tokens t ON t.key_id = s.key_id AND t.revoked_at IS NULL "
                "WHERE s.session_hash = ?",
                (session_hash,),
            )
            row = cur.fetchone()
        if row is None or str(row[2]) <= iso_utc(datetime.now(UTC)):
            self._forget(session_hash)  # revoked token or expired: the session is over
            return None
        return WebSession(Principal(str(row[0]), check_role(str(row[1]))))

    def sign_out(self, secret: str | None) -> None:
        if secret:
            self._forget(_hash(secret))

    def _forget(self, session_hash: str) -> None:
        with self.db.transaction(write=True) as cur:
            cur.execute("DELETE FROM ol_web_sessions WHERE session_hash = ?", (session_hash,))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
