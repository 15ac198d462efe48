"""Logins, sessions and roles for the HTTP API and the console.

**Sessions.** ``POST /api/login`` checks the password (argon2, ``twin.store.users``) and opens a
server-side session: the browser gets an opaque random token in the ``pumptwin_session`` cookie
(``HttpOnly``: page scripts cannot read it; ``SameSite=Strict``: the browser never sends it with a
request that another site started; ``Secure`` when ``PUMPTWIN_AUTH__COOKIE_SECURE=true``;
``Path=/``; ``Max-Age`` = the session's life). The store keeps only the token's SHA-256, the user
and the expiry (``PUMPTWIN_AUTH__SESSION_HOURS``, default 12 h). Every request looks the session
up, so logout, disabling a user or changing their role or password takes effect at the next
request; an open live stream re-checks its session every :data:`STREAM_SESSION_RECHECK_S`. No
signing secret is needed: the token means nothing without the server's table.

**Roles.** Every ``/api`` route except login and logout depends on :func:`allowed` with one
:class:`~twin.roles.Permission` (or, for the alarm action route, the permission of the action in
the path). No session: 401 ``not_signed_in``. A session whose role lacks the permission: 403
``forbidden``. The acting user is the session's user: bodies carry no ``actor``.

**CSRF.** A cross-site request cannot act with a user's session because (1) the cookie is
``SameSite=Strict``, so a browser attaches it only to requests made by this origin's own pages;
(2) every state-changing request must be ``application/json`` (:func:`browser_guard`, 415
otherwise), which a cross-site HTML form cannot send and a cross-site script can send only after
a CORS preflight that this server never approves (it has no CORS middleware); (3) when a browser
sends ``Origin`` on a state-changing request, it must be this server's own (403
``cross_origin``). Any one of them would stop a forged request; there is no CSRF token because
all three already hold for every unsafe route. Non-browser clients (scripts, tests) send no
``Origin`` and log in like a browser (``POST /api/login``, then the cookie).

**Throttling.** Failed sign-ins are throttled per account and per client address, and password
hashes run at most :data:`~twin.api.throttle.HASHES_AT_ONCE` at a time (:mod:`twin.api.throttle`
has the policy): a throttled attempt gets ``429`` with ``Retry-After`` before any hash is computed.

**Hashing off the loop.** argon2 costs 50-100 ms of CPU by design; it runs in a worker thread
(``asyncio.to_thread``) so a login never stalls MQTT ingest or the live stream. Only the hash
runs there; the store and the service are touched on the loop's thread, as everywhere in the
API.

**/metrics and /healthz** need no login: Prometheus and container health checks do not log in.
``/healthz`` reveals counts only; ``/metrics`` reveals counters and gauges, no patient or device
data beyond counts. If ``PUMPTWIN_AUTH__METRICS_TOKEN`` is set, ``/metrics`` needs
``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: ...}``); otherwise
keep the HTTP port on a private address (the default binds 127.0.0.1; compose publishes it on
the host's 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from twin.api.throttle import HASHES_AT_ONCE, HASHES_WAITING, LoginThrottle, retry_after
from twin.roles import GRANTS, Permission, Role, can, permissions
from twin.settings import AuthSettings
from twin.store.users import (
    MAX_PASSWORD_LENGTH,
    LoginSession,
    User,
    UserError,
    UserStore,
    check_password,
    hash_password,
    needs_rehash,
    verify_password,
)

SESSION_COOKIE: Final = "pumptwin_session"

STREAM_DEVICE_PACE_S: Final = 0.1
"""A stream client gets device summaries at most ten times a second (newer ones replace older
ones meanwhile); alarms, commands and responses go out at once. One write per event made the
stream the twin's largest cost at 1,000 messages/s (BENCHMARKS.md, alarm_latency)."""

STREAM_ENCODE_CHUNK: Final = 25
"""Device summaries a stream encodes and writes before it lets the event loop turn (and writes
any alarm that arrived meanwhile first): a tenth of a second of a 300-pump fleet at 1,000 msg/s is
about 100 summaries, 2-4 ms of encoding in one go, and an alarm arriving meanwhile waited for all
of it (BENCHMARKS.md, alarm_latency)."""

STREAM_SESSION_RECHECK_S: Final = 30.0
"""How long a live stream may outlive its session (logout, disabled user, expiry) at most. Checking
on every event would cost a lookup per event per browser; a half-minute tail of read-only events
to a browser that was signed in is the accepted trade."""

PERMISSION_MARK: Final = "__pumptwin_permission__"
"""Attribute on every permission dependency; the tests use it to prove each /api route has one."""

PUBLIC_API_ROUTES: Final = frozenset({("POST", "/api/login"), ("POST", "/api/logout")})
"""The only /api routes without a permission: you cannot be signed in before signing in."""

_UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class AuthState:
    """What the auth dependencies need, kept on ``app.state.auth`` (no module globals)."""

    users: UserStore
    settings: AuthSettings
    clock: Callable[[], datetime]
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HASHES_AT_ONCE))
    waiting: int = 0

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "detail": detail})


def _state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


# ---------------------------------------------------------------------------------- dependencies


async def browser_guard(request: Request) -> None:
    """CSRF defence for every state-changing request (see the module docstring)."""
    if request.method not in _UNSAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise _problem(
            415, "json_required", "state-changing requests take a JSON body (Content-Type: application/json)"
        )
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise _problem(403, "cross_origin", f"requests from {origin} may not act on this server")


def current_session(request: Request) -> LoginSession | None:
    """The request's valid session, if it has one (no exception)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    state = _state(request)
    return state.users.session(token, state.clock())


async def signed_in(request: Request) -> User:
    """The signed-in user, or 401. FastAPI caches it per request, so a route's other dependencies share it."""
    session = current_session(request)
    if session is None:
        raise _problem(401, "not_signed_in", "sign in first (POST /api/login)")
    return session.user


def allowed(permission: Permission) -> Callable[..., Awaitable[User]]:
    """A dependency: the signed-in user if their role grants ``permission``, else 401/403."""

    async def dependency(user: Annotated[User, Depends(signed_in)]) -> User:
        if not can(user.role, permission):
            raise _problem(
                403,
                "forbidden",
                f"{permission.value} needs the {GRANTS[permission].value} role or higher; {user.username} is a "
                f"{user.role.value}",
            )
        return user

    setattr(dependency, PERMISSION_MARK, permission)
    dependency.__name__ = f"allowed_{permission.value}"
    return dependency


def allowed_by_path(parameter: str, grants: dict[str, Permission]) -> Callable[..., Awaitable[User]]:
    """Like :func:`allowed`, for one route serving several actions: the permission is the one the
    path parameter ``parameter`` names in ``grants``. A value not in ``grants`` only needs a
    session here; the route's own validation then refuses it (422)."""

    async def dependency(request: Request, user: Annotated[User, Depends(signed_in)]) -> User:
        permission = grants.get(str(request.path_params.get(parameter, "")))
        if permission is not None and not can(user.role, permission):
            raise _problem(
                403,
                "forbidden",
                f"{permission.value} needs the {GRANTS[permission].value} role or higher; {user.username} is a "
                f"{user.role.value}",
            )
        return user

    setattr(dependency, PERMISSION_MARK, tuple(sorted(set(grants.values()))))
    return dependency


Reader = Annotated[User, Depends(allowed(Permission.READ))]
Commander = Annotated[User, Depends(allowed(Permission.COMMAND))]
Responder = Annotated[User, Depends(allowed(Permission.RESPOND))]
UserAdmin = Annotated[User, Depends(allowed(Permission.MANAGE_USERS))]
TruthReader = Annotated[User, Depends(allowed(Permission.VIEW_SIM_TRUTH))]


def metrics_access(request: Request) -> None:
    """``/metrics``: open unless a metrics token is configured (see the module docstring)."""
    token = _state(request).settings.metrics_token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(value.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            status_code=401,
            detail={"reason": "metrics_token_required", "detail": "send Authorization: Bearer <metrics token>"},
            headers={"WWW-Authenticate": "Bearer"},
        )


# -------------------------------------------------------------------------------------- bodies


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class NewUserBody(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class UserChangeBody(ApiModel):
    role: Role | None = None
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)
    disabled: bool | None = None


def user_json(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role.value,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def me_json(session: LoginSession, now: datetime) -> dict[str, Any]:
    return {
        **user_json(session.user),
        "permissions": [p.value for p in permissions(session.user.role)],
        "session_expires_at": session.expires_at.isoformat(),
        "now": now.isoformat(),  # the console measures alarm ages on the server's clock
    }


def _user_error(exc: UserError) -> HTTPException:
    status = {"unknown_user": 404, "user_exists": 409}.get(exc.reason, 422)
    return _problem(status, exc.reason, str(exc))


# -------------------------------------------------------------------------------------- routes


def add_auth_routes(app: FastAPI) -> None:
    """``/api/login``, ``/api/logout``, ``/api/me`` and the admin's ``/api/users``, registered on
    the app itself (not an included router) so that ``app.routes`` lists them for the tests."""

    @app.post("/api/login", tags=["auth"])
    async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        """Check the password and start a session (cookie ``pumptwin_session``). 401
        ``invalid_credentials`` for an unknown user, a disabled one, or a wrong password alike."""
        state = _state(request)
        address = request.client.host if request.client is not None else "unknown"
        wait = state.throttle.wait(body.username, address, state.clock())
        if wait is not None:
            raise HTTPException(
                status_code=429,
                detail={"reason": "too_many_attempts", "detail": "too many failed sign-ins: wait and try again"},
                headers={"Retry-After": retry_after(wait)},
            )
        if state.waiting >= HASHES_WAITING:
            raise HTTPException(
                status_code=429,
                detail={"reason": "busy", "detail": "too many sign-ins at once: try again in a moment"},
                headers={"Retry-After": "1"},
            )
        stored = state.users.password_hash(body.username)
        state.waiting += 1
        try:
            async with state.hashing:
                verified = await asyncio.to_thread(verify_password, stored, body.password)
        finally:
            state.waiting -= 1
        if not verified:
            state.throttle.failed(body.username, address, state.clock())
            raise _problem(401, "invalid_credentials", "unknown user or wrong password")
        state.throttle.succeeded(body.username)
        assert stored is not None  # verify_password is False without a hash
        if needs_rehash(stored):
            try:
                fresh = await asyncio.to_thread(hash_password, body.password)
            except UserError:
                pass  # an old password below today's policy: keep its hash, the admin may reset it
            else:
                state.users.update(body.username, actor="twin", at=state.clock(), password_hash=fresh, rehash=True)
        now = state.clock()
        token = state.users.open_session(body.username, now, state.session_ttl)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(state.session_ttl.total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=state.settings.cookie_secure,
        )
        session = state.users.session(token, now)
        assert session is not None
        return me_json(session, now)

    @app.post("/api/logout", status_code=204, tags=["auth"])
    async def logout(request: Request, response: Response) -> None:
        """End the session (if any) and clear the cookie. Needs no session: logging out twice is fine."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            _state(request).users.close_session(token)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    @app.get("/api/me", tags=["auth"])
    async def me(request: Request, _: Reader) -> dict[str, Any]:
        """Who is signed in, their role and permissions (the console shows only what they allow)."""
        session = current_session(request)
        assert session is not None  # Reader guaranteed it a moment ago, on the same thread
        return me_json(session, _state(request).clock())

    @app.get("/api/users", tags=["auth"])
    async def list_users(request: Request, _: UserAdmin) -> list[dict[str, Any]]:
        return [user_json(u) for u in _state(request).users.all()]

    @app.post("/api/users", status_code=201, tags=["auth"])
    async def add_user(body: NewUserBody, request: Request, admin: UserAdmin) -> dict[str, Any]:
        state = _state(request)
        try:
            check_password(body.password)
            password_hash = await asyncio.to_thread(hash_password, body.password)
            user = state.users.add(body.username, body.role, password_hash, actor=admin.username, at=state.clock())
        except UserError as exc:
            raise _user_error(exc) from None
        return user_json(user)

    @app.patch("/api/users/{username}", tags=["auth"])
    async def change_user(username: str, body: UserChangeBody, request: Request, admin: UserAdmin) -> dict[str, Any]:
        """Change a role, reset a password, disable or enable. Each ends the user's sessions. An
        admin cannot change their own role or disable themselves (no locking the last admin out)."""
        state = _state(request)
        if username == admin.username and (
            (body.role is not None and body.role is not admin.role) or body.disabled is True
        ):
            raise _problem(409, "own_account", "an admin cannot demote or disable their own account")
        try:
            password_hash = None
            if body.password is not None:
                check_password(body.password)
                password_hash = await asyncio.to_thread(hash_password, body.password)
            user = state.users.update(
                username,
                actor=admin.username,
                at=state.clock(),
                role=body.role,
                password_hash=password_hash,
                disabled=body.disabled,
            )
        except UserError as exc:
            raise _user_error(exc) from None
        return user_json(user)


__all__ = [
    "PERMISSION_MARK",
    "PUBLIC_API_ROUTES",
    "SESSION_COOKIE",
    "AuthState",
    "Commander",
    "Reader",
    "Responder",
    "UserAdmin",
    "add_auth_routes",
    "allowed",
    "allowed_by_path",
    "browser_guard",
    "current_session",
    "metrics_access",
    "signed_in",
]
