"""Broker accounts: who may connect to the Mosquitto broker, and what each account may publish and read.

Four kinds of account, each a username in Mosquitto's password file with its rights in the ACL file:

* a **device** (username = device id): publishes only its own topics
  (``pumptwin/v1/<site>/<id>/{birth,state,telemetry,alarm,status,cmd/result}``) and reads only its own ``cmd``;
* **twin**: reads everything under ``pumptwin/v1/#``; writes ``cmd`` only in simulation sites;
* **simulator**: publishes for any device of a simulation site and reads those devices' ``cmd``;
  it also publishes the site's simulation clock (``pumptwin/v1/{site}/clock``).
* **gateway**: publishes interrogation read-outs of real pumps (``birth``, ``state``, ``alarm``, ``status``) for
  any device of a *gateway site*, and reads those devices' retained ``birth`` (to know which interrogation the
  broker holds). A gateway site is a real site: never a simulation site, and the twin commands nothing there.

The safety rule of the product (real pumps are read-only mirrors) is enforced here a second time, in the
broker, below the twin's own check of the ``simulated`` flag: simulated devices live in *simulation sites*,
listed in the ACL, and the twin has no write right on any other site. A command to a real device is dropped
by the broker even if the twin sent one. A site is a simulation site or a real one, never both: this module
refuses to issue a real device in a simulation site, a simulated device in a real site, and to declare a
site that has real devices a simulation site.

The ACL file is written by this module only, and read back strictly: a file that differs from what this
module would write for the accounts it describes (a hand edit) is refused, never silently rewritten.

Pure part: :class:`AccessPolicy`, :func:`render_acl`, :func:`parse_acl`, :func:`verify_password`. Shell
part: :class:`BrokerAccounts` (the two files, a lock, and ``mosquitto_passwd``, which makes the hashes).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import grp
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from twin.contract.codec import CHANNELS
from twin.contract.topics import TOPIC_ROOT, Channel, TopicError, validate_id

TWIN_ACCOUNT: Final = "twin"
SIMULATOR_ACCOUNT: Final = "simulator"
GATEWAY_ACCOUNT: Final = "gateway"
SERVICE_ACCOUNTS: Final = (TWIN_ACCOUNT, SIMULATOR_ACCOUNT, GATEWAY_ACCOUNT)
"""Usernames that are not device ids; a device may not be called one of these."""

DEVICE_CHANNELS: Final = tuple(spec.channel for spec in CHANNELS.values() if spec.publisher == "device")
"""The channels a device publishes on (taken from the contract, so a new device channel is granted here too)."""

GATEWAY_CHANNELS: Final = (Channel.BIRTH, Channel.STATE, Channel.ALARM, Channel.STATUS)
"""What a read-out gateway publishes (``twin.gateway.publication``): no telemetry (a read-out is not a stream) and
no command results (real pumps get no commands)."""

GENERATED_PASSWORD_BYTES: Final = 24
"""Random bytes in a generated password: 192 bits, 32 URL-safe characters. Mosquitto's PBKDF2 uses only 101
iterations, so the strength of a stored hash rests on the password being random, not on the hash."""

MIN_PASSWORD_LENGTH: Final = 16
"""Shortest password accepted from an operator (service accounts in compose.yaml come from ``.env``)."""

MAX_PASSWORD_LENGTH: Final = 256
"""Longest password accepted: ``mosquitto_passwd`` reads one line into a fixed buffer."""

ACL_HEADER: Final = f"""\
# PumpTwin broker ACL. Written by `pumptwin broker` (twin/broker_accounts.py): do not edit by hand, the
# tool refuses to change a file that differs from what it would have written.
#
# Real pumps are read-only mirrors: the twin may write `cmd` only in simulation sites (listed in the
# twin's block), and a real device is never issued in a simulation site. Devices publish only their own
# topics and read only their own `cmd`. Topics: {TOPIC_ROOT}/<site>/<device id>/<channel>.
"""


class AccountError(ValueError):
    """A request the broker accounts cannot honour; ``reason`` is a short stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True, order=True)
class DeviceAccount:
    """A device's broker account: its username is its device id, its rights are its own topics at ``site``."""

    device_id: str
    site: str


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Everything the ACL file says: the simulation sites and the device accounts.

    The twin and simulator rights follow from the simulation sites; they are always present.
    Invariant (kept by the ``with_*`` methods, checked by :func:`parse_acl`): device ids are unique, and a
    device in a simulation site is a simulated device.
    """

    simulation_sites: frozenset[str] = frozenset()
    devices: tuple[DeviceAccount, ...] = ()
    gateway_sites: frozenset[str] = frozenset()

    def device(self, device_id: str) -> DeviceAccount | None:
        return next((d for d in self.devices if d.device_id == device_id), None)

    def is_simulated(self, device: DeviceAccount) -> bool:
        return device.site in self.simulation_sites

    def with_device(self, site: str, device_id: str, *, simulated: bool) -> AccessPolicy:
        """This policy with a device account added; unchanged if it is already there at ``site``.

        ``simulated`` must say what the site is: a simulated device in a simulation site, a real one elsewhere.
        """
        _valid_id(site, "site")
        _valid_id(device_id, "device id")
        if device_id in SERVICE_ACCOUNTS:
            raise AccountError("reserved_username", f"{device_id!r} is a service account name, not a device id")
        existing = self.device(device_id)
        if existing is not None and existing.site != site:
            raise AccountError(
                "device_elsewhere",
                f"device {device_id!r} is already issued at site {existing.site!r}; a username belongs to one "
                "device in one site: revoke it first to move it",
            )
        if site in self.simulation_sites and not simulated:
            raise AccountError(
                "real_device_in_simulation_site",
                f"site {site!r} is a simulation site: the twin may command every device there, so a real pump "
                "must never be issued in it (pass --simulated for a simulated device)",
            )
        if site not in self.simulation_sites and simulated:
            raise AccountError(
                "simulated_device_in_real_site",
                f"site {site!r} is not a simulation site; declare it first (pumptwin broker simulation-site {site})",
            )
        if existing is not None:
            return self
        devices = tuple(sorted((*self.devices, DeviceAccount(device_id=device_id, site=site))))
        return dataclasses.replace(self, devices=devices)

    def with_simulation_site(self, site: str) -> AccessPolicy:
        """This policy with ``site`` declared a simulation site; refused if real devices are issued there."""
        _valid_id(site, "site")
        if site in self.simulation_sites:
            return self
        if site in self.gateway_sites:
            raise AccountError(
                "site_has_gateway",
                f"site {site!r} is a gateway site: its pumps are real, and a simulation site lets the twin command "
                "every device in it",
            )
        real = sorted(d.device_id for d in self.devices if d.site == site)
        if real:
            raise AccountError(
                "site_has_real_devices",
                f"site {site!r} has real devices ({', '.join(real)}); a simulation site lets the twin command "
                "every device in it, so it cannot hold real pumps",
            )
        return dataclasses.replace(self, simulation_sites=self.simulation_sites | {site})

    def with_gateway_site(self, site: str) -> AccessPolicy:
        """This policy with ``site`` declared a gateway site (the gateway publishes read-outs of its real pumps);
        refused for a simulation site."""
        _valid_id(site, "site")
        if site in self.simulation_sites:
            raise AccountError(
                "gateway_in_simulation_site",
                f"site {site!r} is a simulation site: read-outs of real pumps never go there",
            )
        return dataclasses.replace(self, gateway_sites=self.gateway_sites | {site})

    def without_device(self, device_id: str) -> AccessPolicy:
        return dataclasses.replace(self, devices=tuple(d for d in self.devices if d.device_id != device_id))


def _valid_id(value: str, what: str) -> str:
    try:
        return validate_id(value, what=what)
    except TopicError as exc:
        raise AccountError(exc.reason, str(exc)) from None


def _topic(site: str, device: str, channel: Channel) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/{channel.value}"


def render_acl(policy: AccessPolicy) -> str:
    """The Mosquitto ACL file for ``policy``: deterministic, so re-rendering an unchanged policy changes nothing.

    Only ``user`` and ``topic`` lines, no ``pattern`` lines (those would apply to every account) and no
    lines before the first ``user`` (those would apply to anonymous clients, who are refused anyway).
    """
    sites = sorted(policy.simulation_sites)
    lines = [ACL_HEADER]
    lines.append(
        "# twin: reads every site; commands simulated devices only"
        + (f" (simulation sites: {', '.join(sites)})" if sites else " (no simulation sites yet: commands nothing)")
    )
    lines.append(f"user {TWIN_ACCOUNT}")
    lines.append(f"topic read {TOPIC_ROOT}/#")
    lines.extend(f"topic write {_topic(site, '+', Channel.CMD)}" for site in sites)
    lines.append("")
    lines.append("# simulator: publishes for the devices of simulation sites and reads their commands")
    lines.append(f"user {SIMULATOR_ACCOUNT}")
    for site in sites:
        lines.extend(f"topic write {_topic(site, '+', channel)}" for channel in DEVICE_CHANNELS)
        lines.append(f"topic read {_topic(site, '+', Channel.CMD)}")
        lines.append(f"topic write {TOPIC_ROOT}/{site}/{Channel.CLOCK.value}")
    gateway_sites = sorted(policy.gateway_sites)
    if gateway_sites:  # no block without sites: files written before the gateway existed read back unchanged
        lines.append("")
        lines.append(
            f"# gateway: publishes read-outs of the real pumps of its sites ({', '.join(gateway_sites)}) "
            "and reads back their births"
        )
        lines.append(f"user {GATEWAY_ACCOUNT}")
        for site in gateway_sites:
            lines.extend(f"topic write {_topic(site, '+', channel)}" for channel in GATEWAY_CHANNELS)
            lines.append(f"topic read {_topic(site, '+', Channel.BIRTH)}")
    for device in sorted(policy.devices):
        kind = "simulated" if policy.is_simulated(device) else "real"
        lines.append("")
        lines.append(f"# device {device.device_id} at {device.site} ({kind})")
        lines.append(f"user {device.device_id}")
        lines.extend(f"topic write {_topic(device.site, device.device_id, channel)}" for channel in DEVICE_CHANNELS)
        lines.append(f"topic read {_topic(device.site, device.device_id, Channel.CMD)}")
    return "\n".join(lines) + "\n"


_TWIN_CMD = re.compile(rf"{re.escape(TOPIC_ROOT)}/([^/]+)/\+/cmd")
_GATEWAY_BIRTH = re.compile(rf"{re.escape(TOPIC_ROOT)}/([^/]+)/\+/birth")
_DEVICE_TOPIC = re.compile(rf"{re.escape(TOPIC_ROOT)}/([^/]+)/([^/]+)/.+")


def parse_acl(text: str) -> AccessPolicy:
    """The policy an ACL file written by :func:`render_acl` describes.

    Strict: the file must be exactly what :func:`render_acl` writes for the policy read from it, so a hand
    edit (an extra right, a missing line, a reordering) raises :class:`AccountError` (``acl_edited``)
    naming the first line that differs, instead of being dropped at the next write.
    """
    users: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user" and len(words) == 2:
            current = words[1]
            if current in users:
                raise AccountError("acl_edited", f"ACL line {number}: user {current!r} appears twice")
            users[current] = []
        elif words[0] == "topic" and len(words) == 3 and current is not None:
            users[current].append((words[1], words[2]))
        else:
            raise AccountError("acl_edited", f"ACL line {number} is not one this tool writes: {line!r}")
    sites = frozenset(
        m.group(1)
        for access, topic in users.get(TWIN_ACCOUNT, [])
        if access == "write" and (m := _TWIN_CMD.fullmatch(topic))
    )
    gateway_sites = frozenset(
        m.group(1)
        for access, topic in users.get(GATEWAY_ACCOUNT, [])
        if access == "read" and (m := _GATEWAY_BIRTH.fullmatch(topic))
    )
    devices = []
    for user, rights in users.items():
        if user in SERVICE_ACCOUNTS:
            continue
        first = _DEVICE_TOPIC.fullmatch(rights[0][1]) if rights else None
        if first is None:
            raise AccountError("acl_edited", f"ACL rights of user {user!r} are not a device's")
        devices.append(DeviceAccount(device_id=user, site=first.group(1)))
    policy = AccessPolicy(simulation_sites=sites, devices=tuple(sorted(devices)), gateway_sites=gateway_sites)
    expected = render_acl(policy)
    if expected != text:
        _raise_first_difference(expected, text)
    return policy


def _raise_first_difference(expected: str, actual: str) -> NoReturn:
    want, got = expected.splitlines(), actual.splitlines()
    for number, (a, b) in enumerate(zip(want, got, strict=False), start=1):
        if a != b:
            raise AccountError(
                "acl_edited", f"ACL line {number} differs from what the tool writes: {b!r} (expected {a!r})"
            )
    raise AccountError(
        "acl_edited", f"ACL has {len(got)} lines where the tool writes {len(want)} (or differs in line endings)"
    )


def verify_password(password: str, stored_hash: str) -> bool:
    """Whether ``password`` matches a Mosquitto password-file hash.

    Understands ``$7$<iterations>$<salt>$<hash>`` (PBKDF2-SHA512, ``mosquitto_passwd`` 2.0) and ``$6$<salt>$<hash>``
    (SHA-512 of password + salt, Mosquitto 1.x). Anything else does not match. Used only to keep a run that
    changes nothing from rewriting the file; hashes are made by ``mosquitto_passwd``.
    """
    parts = stored_hash.split("$")
    try:
        if len(parts) == 5 and parts[:2] == ["", "7"]:
            iterations, salt, want = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(want))
        elif len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except ValueError:  # a malformed number or base64 in the file: not a match, and the tool will rewrite it
        return False
    return hmac.compare_digest(got, want)


def check_password(password: str, *, what: str) -> str:
    """Return ``password`` if an operator-chosen password is acceptable, else raise :class:`AccountError`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("weak_password", f"{what} has {len(password)} characters; at least {MIN_PASSWORD_LENGTH}")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError("long_password", f"{what} is longer than {MAX_PASSWORD_LENGTH} characters")
    if any(not c.isprintable() for c in password):
        raise AccountError("bad_password", f"{what} contains control characters (a newline?)")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


# --------------------------------------------------------------------------------------------------------------
# Shell: the password file, the ACL file, the lock.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issued:
    """What an issuing call did. ``password`` is set only when a new password was generated: show it once."""

    username: str
    changed: bool
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """The user and group the broker runs as: the files must be readable by it (Mosquitto 2 reads them after
    dropping root)."""

    uid: int
    gid: int

    @classmethod
    def parse(cls, spec: str) -> Owner:
        """``user``, ``user:group``, or numeric ``uid:gid`` (as in ``chown``)."""
        user, _, group = spec.partition(":")
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            uid, default_gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            if not user.isdigit():
                raise AccountError("unknown_owner", f"no such user {user!r}") from None
            uid, default_gid = int(user), int(user)  # a numeric id the container has no entry for
        if not group:
            return cls(uid, default_gid)
        if group.isdigit():
            return cls(uid, int(group))
        try:
            return cls(uid, grp.getgrnam(group).gr_gid)
        except KeyError:
            raise AccountError("unknown_owner", f"no such group {group!r}") from None


@dataclass(frozen=True, slots=True)
class BrokerAccounts:
    """The broker's password file and ACL file, changed together under a lock.

    Every operation is idempotent: repeating it changes neither file. Files are replaced atomically and keep
    their owner and mode; new files are created mode 0600 (and given to ``owner`` when set).
    """

    password_file: Path
    acl_file: Path
    owner: Owner | None = None
    mosquitto_passwd: str = "mosquitto_passwd"

    # -- reading ---------------------------------------------------------------------------------------------

    def policy(self) -> AccessPolicy:
        """The current policy (empty if there is no ACL file yet)."""
        if not self.acl_file.exists():
            return AccessPolicy()
        return parse_acl(self.acl_file.read_text(encoding="utf-8"))

    def password_hashes(self) -> dict[str, str]:
        if not self.password_file.exists():
            return {}
        hashes = {}
        for line in self.password_file.read_text(encoding="utf-8").splitlines():
            user, sep, stored = line.partition(":")
            if sep:
                hashes[user] = stored
        return hashes

    # -- operations ------------------------------------------------------------------------------------------

    def issue_device(self, site: str, device_id: str, *, simulated: bool, rotate: bool = False) -> Issued:
        """Give a device an account: a random password and rights on its own topics.

        Already issued at ``site``: nothing changes and no password is shown, unless ``rotate``.
        """
        with self._locked():
            policy = self.policy()
            updated = policy.with_device(site, device_id, simulated=simulated)
            has_password = device_id in self.password_hashes()
            if updated == policy and has_password and not rotate:
                return Issued(device_id, changed=False)
            password = generate_password()
            self._set_password(device_id, password)
            self._write_policy(updated)
            return Issued(device_id, changed=True, password=password)

    def revoke_device(self, device_id: str) -> Issued:
        """Remove a device's password and rights. Its retained messages stop being served (check_retain_source)."""
        _valid_id(device_id, "device id")
        if device_id in SERVICE_ACCOUNTS:
            raise AccountError("reserved_username", f"{device_id!r} is a service account, not a device")
        with self._locked():
            policy = self.policy()
            updated = policy.without_device(device_id)
            has_password = device_id in self.password_hashes()
            if updated == policy and not has_password:
                return Issued(device_id, changed=False)
            if has_password:
                self._run_passwd(["-D", str(self.password_file), device_id])
            self._write_policy(updated)
            return Issued(device_id, changed=True)

    def add_simulation_sites(self, sites: Iterable[str]) -> bool:
        """Declare simulation sites (the twin may command their devices, the simulator publishes for them)."""
        with self._locked():
            policy = self.policy()
            updated = policy
            for site in sites:
                updated = updated.with_simulation_site(site)
            if updated == policy and self.acl_file.exists():
                return False
            self._write_policy(updated)
            return True

    def add_gateway_sites(self, sites: Iterable[str]) -> bool:
        """Declare gateway sites: the gateway account may publish read-outs for their real pumps."""
        with self._locked():
            policy = self.policy()
            updated = policy
            for site in sites:
                updated = updated.with_gateway_site(site)
            if updated == policy and self.acl_file.exists():
                return False
            self._write_policy(updated)
            return True

    def issue_service(self, account: str, *, password: str | None = None, rotate: bool = False) -> Issued:
        """Give the twin, the simulator or the gateway its password; its rights follow from the declared sites.

        With ``password`` (an operator's choice, e.g. from ``.env``): set it, unless the stored hash already
        matches. Without: generate one if the account has none (or ``rotate``), and return it.
        """
        if account not in SERVICE_ACCOUNTS:
            raise AccountError("not_a_service", f"{account!r} is not one of {', '.join(SERVICE_ACCOUNTS)}")
        if password is not None:
            check_password(password, what=f"the {account} password")
        with self._locked():
            stored = self.password_hashes().get(account)
            wrote_acl = False
            if not self.acl_file.exists():
                self._write_policy(AccessPolicy())
                wrote_acl = True
            if password is not None:
                if stored is not None and verify_password(password, stored) and not rotate:
                    return Issued(account, changed=wrote_acl)
                self._set_password(account, password)
                return Issued(account, changed=True)
            if stored is not None and not rotate:
                return Issued(account, changed=wrote_acl)
            generated = generate_password()
            self._set_password(account, generated)
            return Issued(account, changed=True, password=generated)

    # -- files -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two operators, or the compose init racing a person)."""
        self.acl_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.acl_file.with_name(self.acl_file.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_policy(self, policy: AccessPolicy) -> None:
        text = render_acl(policy)
        existing = self.acl_file.stat() if self.acl_file.exists() else None
        fd, tmp_name = tempfile.mkstemp(prefix=".acl.", dir=self.acl_file.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if existing is not None:
                os.chmod(tmp, existing.st_mode & 0o7777)
                self._chown(tmp, existing.st_uid, existing.st_gid)
            else:
                os.chmod(tmp, 0o600)
                if self.owner is not None:
                    self._chown(tmp, self.owner.uid, self.owner.gid)
            os.replace(tmp, self.acl_file)
        finally:
            tmp.unlink(missing_ok=True)

    def _set_password(self, username: str, password: str) -> None:
        """Hash with ``mosquitto_passwd``, the password on its stdin (never on a command line others can read)."""
        create = not self.password_file.exists()
        args = ["-c"] if create else []
        self._run_passwd([*args, str(self.password_file), username], stdin=f"{password}\n{password}\n")
        if create:
            os.chmod(self.password_file, 0o600)
            if self.owner is not None:
                self._chown(self.password_file, self.owner.uid, self.owner.gid)

    def _run_passwd(self, args: list[str], stdin: str = "") -> None:
        binary = shutil.which(self.mosquitto_passwd)
        if binary is None:
            raise AccountError(
                "no_mosquitto_passwd",
                f"{self.mosquitto_passwd} not found: install Mosquitto (Debian: apt-get install mosquitto)",
            )
        result = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise AccountError("mosquitto_passwd_failed", f"mosquitto_passwd failed: {detail}")

    @staticmethod
    def _chown(path: Path, uid: int, gid: int) -> None:
        if (uid, gid) == (os.geteuid(), os.getegid()):
            return
        try:
            os.chown(path, uid, gid)
        except PermissionError:
            raise AccountError(
                "cannot_chown",
                f"{path} must belong to {uid}:{gid} for the broker to read it; run as root or as that user",
            ) from None
