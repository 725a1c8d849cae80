"""The auth side of `datafrost dev`: the dev issuer's realm, and what every function process must know.

With the dev issuer (the default) the realm lives in `<data dir>/auth/` and tokens are issued by the
`authz` function under the gateway; with `DATAFROST_AUTH_ISSUER` pointing at a real Keycloak realm
the same verification runs against its keys and no dev issuer is served.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import urllib3

from functions.registry import served_by
from functions.spec import Serves
from shared.auth.dev_issuer import DevRealm, ensure_dev_realm, mint_service_token, mint_token
from shared.settings import Settings

log = logging.getLogger("datafrost.auth")
SERVICE_TOKEN_TTL = 600  # seconds; renewed when less than a third is left

DEV_REALM = "datafrost"
DEV_ISSUER_VARIABLE = "DATAFROST_AUTH_DEV_ISSUER"
CERTS_PATH = "/protocol/openid-connect/certs"


@dataclass(frozen=True)
class AuthSetup:
    env: dict[str, str]  # for every function process
    realm: DevRealm | None  # the dev issuer's realm, when it is in use

    def token_for(self, username: str) -> str | None:
        """A token minted in-process (for `--demo`); None without a dev issuer or with auth off."""
        return mint_token(self.realm, username) if self.realm is not None else None


def prepare_auth(config: Settings, public_url: str, internal_url: str, data_dir: Path) -> AuthSetup:
    """The realm and the environment of every function process.

    Whether the dev issuer is in use is decided here, once, from the platform's own settings, and
    handed to every process as DATAFROST_AUTH_DEV_ISSUER: a function must not decide again from the
    issuer URL it is given (under `--host <an address of this machine>` that URL is not on loopback,
    and the default guess, meant for processes started on their own, would say "a real issuer").
    """
    if not config.auth_enabled:
        return AuthSetup({}, None)
    if not config.auth_dev_issuer:  # a real identity provider: its settings are already in the environment
        return AuthSetup({DEV_ISSUER_VARIABLE: "off"}, None)
    issuer_path = "/" + served_by(Serves.TOKEN_ISSUER)[0].name  # the function serving the realms
    issuer = config.auth_issuer or f"{public_url}{issuer_path}/realms/{DEV_REALM}"
    realm = ensure_dev_realm(data_dir, issuer, audience=config.auth_audience, client=config.auth_client)
    realm_path = issuer.split(issuer_path, 1)[1] if issuer_path + "/" in issuer else f"/realms/{DEV_REALM}"
    env = {
        "DATAFROST_PRESIGN_SECRET": config.presign_secret
        or _local_secret(data_dir / "auth" / "presign-secret"),
        "DATAFROST_AUTH_ISSUER": issuer,
        DEV_ISSUER_VARIABLE: "on",
        # functions fetch the keys on the internal listener: no round trip through the public checks
        "DATAFROST_AUTH_JWKS_URL": f"{internal_url}/authz{realm_path}{CERTS_PATH}",
        "DATAFROST_AUTH_SERVICE_CLIENT_ID": realm.service_client_id,
        "DATAFROST_AUTH_SERVICE_CLIENT_SECRET": realm.service_client_secret,
    }
    return AuthSetup(env, realm)


STORAGE_EVENTS_TOKEN_VARIABLE = "DATAFROST_STORAGE_EVENTS_TOKEN"
STORAGE_EVENTS_TOKEN_FILE = Path("auth") / "storage-events-token"


def storage_events_token_env(config: Settings, data_dir: Path) -> dict[str, str]:
    """The webhook token storage-events requires, for every process: the user's
    DATAFROST_STORAGE_EVENTS_TOKEN, else one made once and kept in `<data dir>/auth/storage-events-token`
    (the bucket watcher sends it; give it to MinIO as its webhook `auth_token`). Independent of
    DATAFROST_AUTH: the notification route is public either way."""
    token = config.storage_events_token or _local_secret(data_dir / STORAGE_EVENTS_TOKEN_FILE)
    return {STORAGE_EVENTS_TOKEN_VARIABLE: token}


def _local_secret(path: Path) -> str:
    """A random secret kept in the data dir (0600), made on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


class ServiceCredentials:
    """`Authorization` for the platform's own internal calls (the broker's deliveries, the gateway's
    metrics scrape, the MinIO AMQP source): a service-role token, renewed before it expires.

    Only URLs under `origin` (the internal listener) get it: a trigger's sink elsewhere never sees a
    credential. The token is minted from the dev realm, or fetched with the client-credentials grant
    from a real issuer (DATAFROST_AUTH_SERVICE_CLIENT_ID/_SECRET); without either there is none.
    """

    def __init__(self, origin: str, fetch: Callable[[], tuple[str, int]] | None) -> None:
        self._origin = origin.rstrip("/") + "/"
        self._fetch = fetch
        self._token: tuple[str, float] | None = None  # (token, renew at monotonic time)
        self._lock = threading.Lock()

    def __call__(self, url: str) -> dict[str, str]:
        """The headers a request to `url` carries: Authorization for the internal origin, else none."""
        if self._fetch is None or not url.startswith(self._origin):
            return {}
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._token[1]:
                assert self._fetch is not None
                token, ttl = self._fetch()
                self._token = (token, time.monotonic() + ttl * 2 / 3)
            return self._token[0]


def service_credentials(config: Settings, auth: AuthSetup, internal_url: str) -> ServiceCredentials:
    """The platform's credentials for its internal calls, from the dev realm or a real issuer."""
    realm = auth.realm
    if not config.auth_enabled:
        return ServiceCredentials(internal_url, None)
    if realm is not None:
        return ServiceCredentials(
            internal_url,
            lambda: (
                mint_service_token(realm, realm.service_client_id, SERVICE_TOKEN_TTL),
                SERVICE_TOKEN_TTL,
            ),
        )
    client_id, secret = config.auth_service_client_id, config.auth_service_client_secret
    if config.auth_issuer and client_id and secret:
        token_url = f"{config.auth_issuer}/protocol/openid-connect/token"
        return ServiceCredentials(internal_url, lambda: _client_credentials(token_url, client_id, secret))
    if config.auth_service_routes == "token":
        log.warning(
            "internal calls carry no token: set DATAFROST_AUTH_SERVICE_CLIENT_ID and _SECRET (a client "
            "with the service role), or functions answer the broker's deliveries with 401"
        )
    return ServiceCredentials(internal_url, None)


def _client_credentials(token_url: str, client_id: str, secret: str) -> tuple[str, int]:
    """OAuth 2 client credentials (RFC 6749 4.4): the access token and its lifetime in seconds."""
    form = urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    answer = urllib3.request(
        "POST",
        token_url,
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10.0,
        retries=False,
    )
    if answer.status != 200:
        raise RuntimeError(f"the issuer refused the service client's credentials ({answer.status})")
    body = json.loads(answer.data)
    return str(body["access_token"]), int(body.get("expires_in", 60))
