"""Console accounts for tests: make one per role, sign an HTTP client in as one of them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from twin.roles import Role
from twin.store.users import UserStore, hash_password

PASSWORDS = {role: f"test-{role.value}-password" for role in Role}
"""One account per role, named after the role (``viewer``, ``trainee``, ...), with these passwords."""


def add_accounts(store: UserStore, at: datetime | None = None) -> None:
    """Add an account for every role (name = role) to ``store``."""
    for role, password in PASSWORDS.items():
        store.add(role.value, role, hash_password(password), actor="test", at=at or datetime.now(UTC))


async def sign_in(client: httpx.AsyncClient, role: Role) -> dict[str, Any]:
    """Log ``client`` in as the account of ``role``; it keeps the session cookie. Returns /api/me's body."""
    answer = await client.post("/api/login", json={"username": role.value, "password": PASSWORDS[role]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@contextlib.asynccontextmanager
async def client_as(base_url: str, role: Role, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to a running twin, signed in as ``role``."""
    async with httpx.AsyncClient(base_url=base_url, **kwargs) as client:
        await sign_in(client, role)
        yield client
