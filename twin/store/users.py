"""Console accounts and their login sessions, in their own SQLite file (``users.sqlite`` in the data
directory), apart from the alarm journal.

Why a separate file and not a migration of the journal: the journal is the audit trail that is
kept, copied and handed to training review; password hashes and live session tokens have no
business travelling with it, and a credentials file can be restored or wiped on its own. The file
follows the journal's pattern: WAL, ``synchronous=NORMAL``, versioned migrations in
``PRAGMA user_version`` (:data:`MIGRATIONS`), ``BEGIN IMMEDIATE`` writes, so ``pumptwin users add``
in another process can add an account while the twin runs.

Tables:

* ``account`` — one row per user: username, role, argon2 hash, disabled flag. Accounts are
  disabled, never deleted, so every name in the journal stays one person.
* ``login_session`` — the server-side half of a login: SHA-256 of the opaque token (the cookie
  holds the token; a copy of this file yields no usable session), the user, created and expiry
  times. Logout deletes the row; disabling a user or changing their password or role deletes all
  of theirs.
* ``account_event`` — append-only record of who created or changed which account, and when
  (never the password or its hash).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile: 3 passes, 64 MiB, 4 lanes): about 50-100 ms of CPU per hash on the 2-core build machine,
which is the point (a stolen file resists guessing) and why the HTTP layer hashes in a worker
thread. :func:`verify_password` takes the same time for an unknown user (it checks a dummy hash),
so a login's timing does not tell whether a name exists.

Threads: like the journal, a connection belongs to the thread that opened it; the twin opens and
uses it on the event loop's thread (each call is a few tens of microseconds). Hashing never
touches the store.

Failure modes: :class:`UserError` with a ``reason`` (``invalid_username``, ``weak_password``,
``user_exists``, ``unknown_user``), :class:`twin.store.journal.JournalError` for a file from a
newer PumpTwin, ``sqlite3.Error`` from the disk.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from twin.roles import Role
from twin.store.journal import JournalError
from twin.store.sqlite import SqliteStore, append_only

USERNAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""Lower-case letters, digits, ``.``, ``_``, ``-``; 1-64 characters. The name is the ``actor`` of
every journal entry and command the user makes, so it must be unambiguous: no case variants, no
spaces, nothing that looks like the twin's own actors (``device``, ``twin``, ``scenario:...``)."""

RESERVED_USERNAMES: Final = frozenset({"device", "twin", "scenario", "system"})
"""Actors the twin writes itself (see ``twin.alarms.lifecycle``); a person may not take them."""

MIN_PASSWORD_LENGTH: Final = 8
"""NIST SP 800-63B's minimum for a memorised secret chosen by the user."""

MAX_PASSWORD_LENGTH: Final = 1024
"""Longer input is refused before hashing, so a request cannot make the server hash megabytes."""

SESSION_TOKEN_BYTES: Final = 32
"""256 random bits per session token (``secrets.token_urlsafe``): not guessable, not enumerable."""

_HASHER: Final = PasswordHasher()


class UserError(ValueError):
    """An account operation that was refused; nothing changed. ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LoginSession:
    """A valid session: whose it is and when it ends."""

    user: User
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AccountEvent:
    at: datetime
    actor: str
    username: str
    change: str  # "created", "role", "password", "disabled", "enabled"
    detail: dict[str, Any]


# ------------------------------------------------------------------------------------ passwords


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username) or username in RESERVED_USERNAMES:
        raise UserError(
            "invalid_username",
            f"{username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit, and none of {sorted(RESERVED_USERNAMES)}",
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise UserError("weak_password", f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """argon2id hash of an acceptable password (:func:`check_password`). CPU-heavy: see the module doc."""
    return _HASHER.hash(check_password(password))


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Does ``password`` match ``stored_hash``? ``None`` (no such user) takes as long and is ``False``."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehash it at the next login)."""
    return _HASHER.check_needs_rehash(stored_hash)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------------------------------- store

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE account (
            username TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('viewer', 'trainee', 'instructor', 'admin')),
            password_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE login_session (
            token_digest TEXT PRIMARY KEY,
            username TEXT NOT NULL REFERENCES account (username),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        ) STRICT, WITHOUT ROWID
        """,
        "CREATE INDEX login_session_user ON login_session (username)",
        """
        CREATE TABLE account_event (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            username TEXT NOT NULL,
            change TEXT NOT NULL,
            detail TEXT NOT NULL CHECK (json_valid(detail))
        ) STRICT
        """,
        *append_only("account_event"),
    ),
)
"""Schema migrations, oldest first (the journal's pattern). Append new ones; never edit a released one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_USER_COLUMNS: Final = "username, role, disabled, created_at, updated_at"


class UserStore(SqliteStore):
    """Accounts and sessions at ``path`` (created and migrated if needed); ``None``: in memory,
    for tests and for an app built without a store (then nobody can log in)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__(path, MIGRATIONS, error=JournalError, setup=("PRAGMA foreign_keys = ON",))

    # ------------------------------------------------------------------------------ accounts

    def add(self, username: str, role: Role, password_hash: str, *, actor: str, at: datetime) -> User:
        """Create an account; :class:`UserError` ``user_exists`` if the name is taken (even by a
        disabled account: names are never reused)."""
        check_username(username)
        now = _text(at)
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO account (username, role, password_hash, disabled, created_at, updated_at) "
                "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (username) DO NOTHING",
                (username, Role(role).value, password_hash, now, now),
            )
            if cursor.rowcount == 0:
                raise UserError("user_exists", f"there is already a user {username!r}")
            self._event(at, actor, username, "created", {"role": Role(role).value})
        user = self.get(username)
        assert user is not None
        return user

    def get(self, username: str) -> User | None:
        row = self._db.execute(f"SELECT {_USER_COLUMNS} FROM account WHERE username = ?", (username,)).fetchone()
        return None if row is None else _user(row)

    def all(self) -> list[User]:
        return [_user(row) for row in self._db.execute(f"SELECT {_USER_COLUMNS} FROM account ORDER BY username")]

    def any_admin(self) -> bool:
        """Is there an enabled admin (someone who can manage the others)?"""
        row = self._db.execute("SELECT 1 FROM account WHERE role = 'admin' AND disabled = 0 LIMIT 1").fetchone()
        return row is not None

    def password_hash(self, username: str) -> str | None:
        """The stored hash of an *enabled* account, else ``None`` (a disabled user cannot log in)."""
        row = self._db.execute(
            "SELECT password_hash FROM account WHERE username = ? AND disabled = 0", (username,)
        ).fetchone()
        return None if row is None else str(row[0])

    def update(
        self,
        username: str,
        *,
        actor: str,
        at: datetime,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
        rehash: bool = False,
    ) -> User:
        """Change an account. A new role, a new password or disabling ends every session of the
        user (they log in again under the new terms). ``rehash``: the password is the same, only
        its hash was upgraded (no event, sessions kept). :class:`UserError` ``unknown_user``."""
        current = self.get(username)
        if current is None:
            raise UserError("unknown_user", f"no user {username!r}")
        changes: list[tuple[str, dict[str, Any]]] = []
        sets: list[str] = []
        params: list[object] = []
        if role is not None and Role(role) is not current.role:
            sets.append("role = ?")
            params.append(Role(role).value)
            changes.append(("role", {"from": current.role.value, "to": Role(role).value}))
        if password_hash is not None:
            sets.append("password_hash = ?")
            params.append(password_hash)
            if not rehash:
                changes.append(("password", {}))
        if disabled is not None and disabled != current.disabled:
            sets.append("disabled = ?")
            params.append(int(disabled))
            changes.append(("disabled" if disabled else "enabled", {}))
        if not sets:
            return current
        with self._transaction():
            self._db.execute(
                f"UPDATE account SET {', '.join(sets)}, updated_at = ? WHERE username = ?",
                (*params, _text(at), username),
            )
            for change, detail in changes:
                self._event(at, actor, username, change, detail)
            if changes:
                self._db.execute("DELETE FROM login_session WHERE username = ?", (username,))
        user = self.get(username)
        assert user is not None
        return user

    def events(self, username: str | None = None) -> list[AccountEvent]:
        sql = "SELECT at, actor, username, change, detail FROM account_event"
        params: tuple[object, ...] = ()
        if username is not None:
            sql += " WHERE username = ?"
            params = (username,)
        return [
            AccountEvent(datetime.fromisoformat(at), actor, name, change, json.loads(detail))
            for at, actor, name, change, detail in self._db.execute(sql + " ORDER BY id", params)
        ]

    def _event(self, at: datetime, actor: str, username: str, change: str, detail: Mapping[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO account_event (at, actor, username, change, detail) VALUES (?, ?, ?, ?, ?)",
            (_text(at), actor, username, change, json.dumps(dict(detail))),
        )

    # ------------------------------------------------------------------------------ sessions

    def open_session(self, username: str, at: datetime, ttl: timedelta) -> str:
        """Start a session for an enabled user; return its token (shown once: only its digest is
        stored). Sessions that ended before ``at`` are swept here, so the table stays small."""
        user = self.get(username)
        if user is None or user.disabled:
            raise UserError("unknown_user", f"no enabled user {username!r}")
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        with self._transaction():
            self._db.execute("DELETE FROM login_session WHERE expires_at <= ?", (_text(at),))
            self._db.execute(
                "INSERT INTO login_session (token_digest, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_digest(token), username, _text(at), _text(at + ttl)),
            )
        return token

    def session(self, token: str, at: datetime) -> LoginSession | None:
        """The session behind ``token`` if it is still valid at ``at`` and its user enabled."""
        row = self._db.execute(
            f"SELECT {', '.join('a.' + c.strip() for c in _USER_COLUMNS.split(','))}, s.created_at, s.expires_at "
            "FROM login_session s JOIN account a ON a.username = s.username "
            "WHERE s.token_digest = ? AND s.expires_at > ? AND a.disabled = 0",
            (token_digest(token), _text(at)),
        ).fetchone()
        if row is None:
            return None
        return LoginSession(_user(row[:5]), datetime.fromisoformat(row[5]), datetime.fromisoformat(row[6]))

    def close_session(self, token: str) -> bool:
        """End a session (logout); ``False`` if there was none."""
        with self._transaction():
            cursor = self._db.execute("DELETE FROM login_session WHERE token_digest = ?", (token_digest(token),))
        return cursor.rowcount == 1


def _text(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _user(row: tuple[Any, ...]) -> User:
    username, role, disabled, created_at, updated_at = row
    return User(
        username=username,
        role=Role(role),
        disabled=bool(disabled),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
    )


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SCHEMA_VERSION",
    "AccountEvent",
    "LoginSession",
    "User",
    "UserError",
    "UserStore",
    "check_password",
    "check_username",
    "hash_password",
    "needs_rehash",
    "verify_password",
]
