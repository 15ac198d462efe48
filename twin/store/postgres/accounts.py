"""Console accounts, login sessions and account events in PostgreSQL: :class:`PostgresAccountStore`,
the same rules as :class:`twin.store.users.UserStore` (names never reused, sessions stored as a
SHA-256 digest of the token, a new role/password or disabling ends the user's sessions,
``account_event`` append-only by trigger). Every replica sees the same accounts, so a login made
through one replica is valid at every other (the console may sit behind a load balancer).

Failure modes: :class:`~twin.store.users.UserError`, :class:`~twin.store.protocol.StoreUnavailable`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from twin.roles import Role
from twin.store.postgres.database import Database
from twin.store.users import (
    SESSION_TOKEN_BYTES,
    AccountEvent,
    LoginSession,
    User,
    UserError,
    check_username,
    token_digest,
)

_USER_COLUMNS: Final = "username, role, disabled, created_at, updated_at"


def _user(row: tuple[Any, ...]) -> User:
    username, role, disabled, created_at, updated_at = row
    return User(username, Role(role), disabled, created_at.astimezone(UTC), updated_at.astimezone(UTC))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")
    return at


class PostgresAccountStore:
    """:class:`~twin.store.accounts.AccountStore` on the :class:`Database` ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, username: str, role: Role, password_hash: str, *, actor: str, at: datetime) -> User:
        check_username(username)

        async def insert(conn: AsyncConnection) -> User:
            cursor = await conn.execute(
                "INSERT INTO account (username, role, password_hash, disabled, created_at, updated_at) "
                f"VALUES (%s, %s, %s, false, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING {_USER_COLUMNS}",
                (username, Role(role).value, password_hash, _aware(at), at),
            )
            row = await cursor.fetchone()
            if row is None:
                raise UserError("user_exists", f"there is already a user {username!r}")
            await _event(conn, at, actor, username, "created", {"role": Role(role).value})
            return _user(row)

        return await self.db.run(insert)

    async def get(self, username: str) -> User | None:
        row = await self.db.fetchone(f"SELECT {_USER_COLUMNS} FROM account WHERE username = %s", (username,))
        return None if row is None else _user(row)

    async def all(self) -> list[User]:
        rows = await self.db.fetchall(f"SELECT {_USER_COLUMNS} FROM account ORDER BY username")
        return [_user(row) for row in rows]

    async def any_admin(self) -> bool:
        return await self.db.fetchone("SELECT 1 FROM account WHERE role = 'admin' AND NOT disabled LIMIT 1") is not None

    async def password_hash(self, username: str) -> str | None:
        row = await self.db.fetchone(
            "SELECT password_hash FROM account WHERE username = %s AND NOT disabled", (username,)
        )
        return None if row is None else str(row[0])

    async def update(
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
        async def change(conn: AsyncConnection) -> User:
            cursor = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM account WHERE username = %s FOR UPDATE", (username,)
            )
            row = await cursor.fetchone()
            if row is None:
                raise UserError("unknown_user", f"no user {username!r}")
            current = _user(row)
            changes: list[tuple[str, dict[str, Any]]] = []
            sets: list[str] = []
            params: list[object] = []
            if role is not None and Role(role) is not current.role:
                sets.append("role = %s")
                params.append(Role(role).value)
                changes.append(("role", {"from": current.role.value, "to": Role(role).value}))
            if password_hash is not None:
                sets.append("password_hash = %s")
                params.append(password_hash)
                if not rehash:
                    changes.append(("password", {}))
            if disabled is not None and disabled != current.disabled:
                sets.append("disabled = %s")
                params.append(disabled)
                changes.append(("disabled" if disabled else "enabled", {}))
            if not sets:
                return current
            cursor = await conn.execute(
                f"UPDATE account SET {', '.join(sets)}, updated_at = %s WHERE username = %s RETURNING {_USER_COLUMNS}",
                (*params, _aware(at), username),
            )
            updated = await cursor.fetchone()
            assert updated is not None
            for name, detail in changes:
                await _event(conn, at, actor, username, name, detail)
            if changes:
                await conn.execute("DELETE FROM login_session WHERE username = %s", (username,))
            return _user(updated)

        return await self.db.run(change)

    async def events(self, username: str | None = None) -> list[AccountEvent]:
        query = "SELECT at, actor, username, change, detail FROM account_event"
        params: tuple[object, ...] = ()
        if username is not None:
            query += " WHERE username = %s"
            params = (username,)
        rows = await self.db.fetchall(query + " ORDER BY id", params)
        return [
            AccountEvent(at.astimezone(UTC), actor, name, change, detail) for at, actor, name, change, detail in rows
        ]

    async def open_session(self, username: str, at: datetime, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)

        async def open_one(conn: AsyncConnection) -> str:
            cursor = await conn.execute(
                "SELECT 1 FROM account WHERE username = %s AND NOT disabled FOR SHARE", (username,)
            )
            if await cursor.fetchone() is None:
                raise UserError("unknown_user", f"no enabled user {username!r}")
            await conn.execute("DELETE FROM login_session WHERE expires_at <= %s", (_aware(at),))
            await conn.execute(
                "INSERT INTO login_session (token_digest, username, created_at, expires_at) VALUES (%s, %s, %s, %s)",
                (token_digest(token), username, at, at + ttl),
            )
            return token

        return await self.db.run(open_one)

    async def session(self, token: str, at: datetime) -> LoginSession | None:
        row = await self.db.fetchone(
            "SELECT a.username, a.role, a.disabled, a.created_at, a.updated_at, s.created_at, s.expires_at "
            "FROM login_session s JOIN account a ON a.username = s.username "
            "WHERE s.token_digest = %s AND s.expires_at > %s AND NOT a.disabled",
            (token_digest(token), _aware(at)),
        )
        if row is None:
            return None
        return LoginSession(_user(row[:5]), row[5].astimezone(UTC), row[6].astimezone(UTC))

    async def close_session(self, token: str) -> bool:
        async def end(conn: AsyncConnection) -> bool:
            cursor = await conn.execute("DELETE FROM login_session WHERE token_digest = %s", (token_digest(token),))
            return cursor.rowcount == 1

        return await self.db.run(end)

    async def close(self) -> None:
        """The store does not own the database: close the :class:`Database` instead."""


async def _event(
    conn: AsyncConnection, at: datetime, actor: str, username: str, change: str, detail: Mapping[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO account_event (at, actor, username, change, detail) VALUES (%s, %s, %s, %s, %s)",
        (at, actor, username, change, Jsonb(dict(detail))),
    )


__all__ = ["PostgresAccountStore"]
