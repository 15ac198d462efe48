"""The seam for console accounts (users, login sessions, account events): what both back ends
offer, asynchronously. The rules are :mod:`twin.store.users`' (names, reserved names, when
sessions end, what is recorded); hashing stays outside the store (:func:`~twin.store.users.hash_password`).
Pure: no I/O here.

Failure modes, the same from every back end: :class:`~twin.store.users.UserError` with its
``reason`` (nothing changed), :class:`~twin.store.protocol.StoreUnavailable` (nothing written;
retry later).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from twin.roles import Role
from twin.store.users import AccountEvent, LoginSession, User


class AccountStore(Protocol):
    """Accounts and their sessions (see :class:`twin.store.users.UserStore` for each operation)."""

    async def add(self, username: str, role: Role, password_hash: str, *, actor: str, at: datetime) -> User:
        """Create an account (``UserError`` ``invalid_username``/``user_exists``)."""
        ...

    async def get(self, username: str) -> User | None: ...

    async def all(self) -> list[User]:
        """Every account, by name."""
        ...

    async def any_admin(self) -> bool:
        """Is there an enabled admin?"""
        ...

    async def password_hash(self, username: str) -> str | None:
        """The stored hash of an enabled account, else ``None``."""
        ...

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
        """Change an account; a new role, password or disabling ends the user's sessions."""
        ...

    async def events(self, username: str | None = None) -> list[AccountEvent]:
        """Account events in the order recorded."""
        ...

    async def open_session(self, username: str, at: datetime, ttl: timedelta) -> str:
        """Start a session; return its token (only its digest is stored)."""
        ...

    async def session(self, token: str, at: datetime) -> LoginSession | None:
        """The session behind ``token`` if valid at ``at`` and its user enabled."""
        ...

    async def close_session(self, token: str) -> bool:
        """End a session; ``False`` if there was none."""
        ...

    async def close(self) -> None: ...


__all__ = ["AccountStore"]
