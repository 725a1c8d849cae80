"""Brute-force detection for the dev issuer's credential checks, as Keycloak's.

Keycloak (Realm settings, Security defenses, Brute force detection; `DefaultBruteForceProtector`) counts
a user's login failures and, past a threshold, refuses that user's logins for a while, without
checking the password and with the same answer a wrong password gets, so the caller cannot tell a
lockout from a wrong guess. The rules, per account (a user, or a confidential client):

- a success clears the count; a failure more than `failure_reset_seconds` after the previous one
  starts a new count;
- "multiple" strategy: after failure n the account waits `wait_increment * (n // failure_factor)`
  seconds; "linear": `wait_increment * (1 + n - failure_factor)` once n reaches the factor;
- no wait from that, but a failure less than `quick_login_check_milliseconds` after the previous one:
  `minimum_quick_login_wait_seconds` (a script, not a person);
- every wait is at most `max_wait_seconds`; a failure while locked is refused and not counted;
- `permanent_lockout`: at `failure_factor` failures the account stays locked (here: until authz
  restarts), with the quick-login wait before that.

Keycloak counts per user only. Here a client address is counted too, over every user and client it
tries (password spraying): the same rules with its own factor (`address_failure_factor`), without the
quick-login wait (one address may be many people) and without permanent lockout; a success does not
clear it. IPv6 addresses count per /64, the block one subscriber usually holds.

State lives in memory, per authz process: a restart forgets every count and lockout. Nothing sleeps:
a locked caller is refused at once.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shared.settings import BruteForcePolicy

MAX_TRACKED = 10_000  # records kept per kind; the least recently failed unlocked ones go first
IPV6_PREFIX = 64


class Kind(Enum):
    USER = "user"
    CLIENT = "client"
    ADDRESS = "address"


@dataclass(frozen=True)
class Key:
    """What failures are counted against: a user, a confidential client, or a client address."""

    kind: Kind
    name: str

    @property
    def is_account(self) -> bool:
        return self.kind is not Kind.ADDRESS


@dataclass
class _Record:
    failures: int = 0
    last_failure: float | None = None
    not_before: float = 0.0  # refused until this clock time
    permanent: bool = False


@dataclass(frozen=True)
class Lockout:
    """What one failure led to: the count so far and how long the key is now locked (0: not locked)."""

    failures: int
    seconds: float

    @property
    def permanent(self) -> bool:
        return math.isinf(self.seconds)


def address_key(address: str) -> Key:
    """The key of a client address: an IPv4 address, an IPv6 /64, or the text as given (at most 64)."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return Key(Kind.ADDRESS, address.strip()[:64])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return Key(Kind.ADDRESS, str(ip.ipv4_mapped))
        return Key(Kind.ADDRESS, str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False)))
    return Key(Kind.ADDRESS, str(ip))


class BruteForceProtector:
    """Failure counts and lockouts, thread-safe; `clock` is monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        policy: BruteForcePolicy,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._max_tracked = max_tracked
        self._records: dict[Kind, OrderedDict[str, _Record]] = {kind: OrderedDict() for kind in Kind}
        self._lock = threading.Lock()

    def locked(self, key: Key) -> bool:
        """Whether `key` is locked out now (its attempts are refused without checking them)."""
        if not self.policy.enabled:
            return False
        with self._lock:
            record = self._records[key.kind].get(key.name)
            return record is not None and (record.permanent or self._clock() < record.not_before)

    def failure(self, key: Key) -> Lockout:
        """Count one failed attempt of `key` (not locked); the lockout it leads to."""
        if not self.policy.enabled:
            return Lockout(0, 0.0)
        with self._lock:
            now = self._clock()
            record = self._record(key)
            previous = record.last_failure
            since = None if previous is None else now - previous
            if since is not None and since > self.policy.failure_reset_seconds:
                record.failures = 0
            record.failures += 1
            record.last_failure = now
            seconds = self._wait(key, record.failures, since)
            if math.isinf(seconds):
                record.permanent = True
            elif seconds > 0:
                record.not_before = now + seconds
            return Lockout(record.failures, seconds)

    def success(self, key: Key) -> None:
        """A correct credential: an account's count starts again (an address keeps its count)."""
        if key.is_account:
            with self._lock:
                self._records[key.kind].pop(key.name, None)

    def _wait(self, key: Key, failures: int, since: float | None) -> float:
        policy = self.policy
        factor = policy.failure_factor if key.is_account else policy.address_failure_factor
        quick = key.is_account and since is not None and since * 1000 < policy.quick_login_check_milliseconds
        quick_wait = float(policy.minimum_quick_login_wait_seconds) if quick else 0.0
        if policy.permanent_lockout and key.is_account:
            return math.inf if failures >= factor else quick_wait
        if policy.strategy == "linear":
            steps = 1 + failures - factor if failures >= factor else 0
        else:
            steps = failures // factor
        wait = float(policy.wait_increment_seconds * steps) or quick_wait
        return min(wait, float(policy.max_wait_seconds))

    def _record(self, key: Key) -> _Record:
        records = self._records[key.kind]
        record = records.get(key.name)
        if record is None:
            if len(records) >= self._max_tracked:
                self._forget_one(records)
            record = records[key.name] = _Record()
        records.move_to_end(key.name)  # least recently failed first
        return record

    def _forget_one(self, records: OrderedDict[str, _Record]) -> None:
        """Make room: the least recently failed record that is not locked, else the oldest one."""
        now = self._clock()
        for name, record in records.items():
            if not record.permanent and now >= record.not_before:
                del records[name]
                return
        records.popitem(last=False)
