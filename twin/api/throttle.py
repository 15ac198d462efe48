"""Login throttling, as a written policy.

Each password check costs an argon2 hash (64 MiB, 50-100 ms of CPU by design), so an unthrottled
login route lets anyone burn the twin's CPU and try passwords as fast as it can hash (about 12 a
second was measured on main). The policy:

* **Per account** (the user name as typed, known or not): after :data:`FREE_FAILURES` failures,
  each further attempt must wait, the wait doubling with every failure (:data:`FIRST_DELAY` up to
  :data:`LONGEST_DELAY`). A success clears the account's record. A wrong password for a real
  account and one for a made-up name are treated alike, so the answer does not tell which names
  exist.
* **Per client address**: at most :data:`ADDRESS_FAILURES` failures in :data:`ADDRESS_WINDOW`,
  whichever accounts they were for (one address trying many names).
* A throttled attempt is answered ``429`` with ``Retry-After`` (whole seconds) **before** any hash
  is computed, so it costs the twin nothing.
* **Concurrent hashes** are bounded (:data:`HASHES_AT_ONCE`, the machine's cores); at most
  :data:`HASHES_WAITING` more may wait, and beyond that a login is answered ``429`` at once.

Records expire (:data:`FORGET_AFTER`) and are bounded in number (:data:`MAX_RECORDS`, oldest
forgotten first), so a flood of made-up names cannot grow memory without bound.

Pure: time is an argument.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

FREE_FAILURES: Final = 5
"""Failures an account may have before it must wait: a user who mistypes a few times is not slowed."""

FIRST_DELAY: Final = timedelta(seconds=2)
LONGEST_DELAY: Final = timedelta(minutes=15)
"""After the free failures the wait doubles from 2 s to at most 15 min: an online guesser gets a few
dozen tries an hour instead of tens of thousands; a locked-out clinician waits minutes, not a day."""

ADDRESS_FAILURES: Final = 30
ADDRESS_WINDOW: Final = timedelta(minutes=5)
"""A ward's shared workstation may see a few people mistype; thirty failures in five minutes is a script."""

FORGET_AFTER: Final = timedelta(hours=1)
MAX_RECORDS: Final = 10_000

HASHES_AT_ONCE: Final = 2
HASHES_WAITING: Final = 8


@dataclass(slots=True)
class _Account:
    failures: int
    last_failure: datetime


class LoginThrottle:
    """The policy's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._addresses: OrderedDict[str, deque[datetime]] = OrderedDict()

    def wait(self, username: str, address: str, now: datetime) -> timedelta | None:
        """How long this attempt must wait (None: it may go ahead now)."""
        self._forget(now)
        longest = timedelta(0)
        account = self._accounts.get(username.lower())
        if account is not None and account.failures >= FREE_FAILURES:
            delay = min(LONGEST_DELAY, FIRST_DELAY * (2 ** (account.failures - FREE_FAILURES)))
            longest = max(longest, account.last_failure + delay - now)
        recent = self._addresses.get(address)
        if recent is not None and len(recent) >= ADDRESS_FAILURES:
            longest = max(longest, recent[-ADDRESS_FAILURES] + ADDRESS_WINDOW - now)
        return longest if longest > timedelta(0) else None

    def failed(self, username: str, address: str, now: datetime) -> None:
        name = username.lower()
        account = self._accounts.pop(name, None)
        self._accounts[name] = _Account((account.failures if account else 0) + 1, now)
        recent = self._addresses.pop(address, None) or deque(maxlen=ADDRESS_FAILURES)
        recent.append(now)
        self._addresses[address] = recent
        while len(self._accounts) > MAX_RECORDS:
            self._accounts.popitem(last=False)
        while len(self._addresses) > MAX_RECORDS:
            self._addresses.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._accounts.pop(username.lower(), None)

    def _forget(self, now: datetime) -> None:
        accounts, addresses = self._accounts, self._addresses
        while accounts and now - next(iter(accounts.values())).last_failure >= FORGET_AFTER:
            accounts.popitem(last=False)
        while addresses and now - next(iter(addresses.values()))[-1] >= FORGET_AFTER:
            addresses.popitem(last=False)


def retry_after(wait: timedelta) -> str:
    """``Retry-After`` in whole seconds, rounded up (never 0 for a real wait)."""
    return str(max(1, math.ceil(wait.total_seconds())))
