"""The identity provider's signing keys (a JWKS URL), cached, refreshed sparingly, served when it is down.

- The first `key_for` fetches the JWKS.
- A kid not in the cache triggers one refresh, at most once per `min_refresh_interval` (a flood of
  tokens with made-up kids costs at most one fetch per interval). Keys older than `max_age` are
  refreshed on the next use under the same limit, so a key the provider removed stops being trusted.
- When the endpoint is down (or answers garbage), the cached keys keep being served.
- Nothing cached and the endpoint unreachable: `AuthUnavailable` (fail closed). Such a failure is
  retried at most once per `failure_retry_interval`.
- Only RSA keys (RS256) and EC P-256 keys (ES256) whose `use` is "sig" or absent, with a kid, are kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from jwt import PyJWK
from jwt.exceptions import PyJWTError

log = logging.getLogger("datafrost.auth.jwks")
MAX_JWKS_BYTES = 512 * 1024
KEY_ALGORITHMS: Mapping[str, str] = {"RSA": "RS256", "EC": "ES256"}  # kty -> the one alg allowed


class AuthUnavailable(Exception):
    """The identity provider's keys cannot be had: nothing cached and the JWKS endpoint is unreachable."""


class UnknownKey(LookupError):
    """No signing key with that kid, even after a refresh (or a refresh is not allowed yet)."""


def _usable(jwk: Any) -> PyJWK | None:
    """The key as PyJWK when it is an RSA or P-256 signing key with a kid and no conflicting alg."""
    if not isinstance(jwk, dict):
        return None
    kid, kty, use, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    algorithm = KEY_ALGORITHMS.get(kty) if isinstance(kty, str) else None
    if not isinstance(kid, str) or not kid or algorithm is None:
        return None
    if use not in (None, "sig") or alg not in (None, algorithm):
        return None
    if kty == "EC" and jwk.get("crv") != "P-256":
        return None
    if any(private in jwk for private in ("d", "p", "q", "k")):  # a JWKS carries public keys only
        return None
    try:
        return PyJWK(jwk, algorithm)
    except (PyJWTError, ValueError, TypeError):
        return None


def parse_jwks(document: Any) -> dict[str, PyJWK]:
    """kid -> key for every usable key of a JWKS document ({"keys": [...]}); ValueError if malformed."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, PyJWK] = {}
    for jwk in document["keys"]:
        key = _usable(jwk)
        if key is not None and key.key_id is not None:
            keys.setdefault(key.key_id, key)
    return keys


class JwksCache:
    """Signing keys from one JWKS URL; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        min_refresh_interval: float = 30.0,
        fetch_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = 300.0,
        failure_retry_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.min_refresh_interval = min_refresh_interval
        self.max_age = max_age
        self.failure_retry_interval = failure_retry_interval
        self.fetches = 0  # HTTP fetches attempted (tests assert this stays bounded)
        self._clock = clock
        self._timeout = urllib3.Timeout(connect=fetch_timeout, read=fetch_timeout)
        self._http = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def key_for(self, kid: str) -> PyJWK:
        """The key with this kid; raises UnknownKey, or AuthUnavailable when nothing is cached."""
        keys = self._keys
        if keys is not None and kid in keys and self._clock() - self._fetched_at < self.max_age:
            return keys[kid]
        with self._lock:  # one fetch at a time; waiting callers see its result
            now = self._clock()
            keys = self._keys
            if keys is None:
                if self._attempted_at is None or now - self._attempted_at >= self.failure_retry_interval:
                    self._refresh(now)
                keys = self._keys
                if keys is None:
                    raise AuthUnavailable("the identity provider's signing keys are unavailable")
            elif (kid not in keys or now - self._fetched_at >= self.max_age) and (
                self._attempted_at is None or now - self._attempted_at >= self.min_refresh_interval
            ):
                self._refresh(now)
                keys = self._keys or keys
        if kid in keys:
            return keys[kid]
        raise UnknownKey("no signing key with that kid")

    @property
    def cached_kids(self) -> frozenset[str]:
        return frozenset(self._keys or ())

    def _refresh(self, now: float) -> None:
        """Fetch the JWKS; on success replace the cache, on failure keep it (and log why)."""
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch())
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            log.warning(
                "cannot fetch the JWKS from %s (%s); %s",
                self.url,
                type(exc).__name__ if isinstance(exc, urllib3.exceptions.HTTPError) else exc,
                "serving cached keys" if self._keys is not None else "no keys cached",
            )
            return
        self._keys = keys
        self._fetched_at = now
        log.info("fetched %d signing key(s) from %s", len(keys), self.url)

    def _fetch(self) -> Any:
        response = self._http.request(
            "GET",
            self.url,
            headers={"Accept": "application/json"},
            timeout=self._timeout,
            redirect=False,
            preload_content=False,
        )
        try:
            if response.status != 200:
                raise _FetchError(f"status {response.status}")
            body = response.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise _FetchError(f"over {MAX_JWKS_BYTES} bytes")
        finally:
            response.release_conn()
        try:
            return json.loads(body)
        except ValueError:
            raise _FetchError("not JSON") from None


class _FetchError(ValueError):
    """The endpoint answered, but not with a JWKS; the message names what was wrong (never the body)."""
