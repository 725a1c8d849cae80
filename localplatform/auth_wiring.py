"""The auth side of `datafrost dev`: the dev issuer's realm, and what every function process must know.

With the dev issuer (the default) the realm lives in `<data dir>/auth/` and tokens are issued by the
`authz` function under the gateway; with `DATAFROST_AUTH_ISSUER` pointing at a real Keycloak realm
the same verification runs against its keys and no dev issuer is served.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.auth.dev_issuer import DevRealm, ensure_dev_realm, mint_token
from shared.settings import Settings

DEV_REALM = "datafrost"
CERTS_PATH = "/protocol/openid-connect/certs"


@dataclass(frozen=True)
class AuthSetup:
    env: dict[str, str]  # for every function process
    realm: DevRealm | None  # the dev issuer's realm, when it is in use

    def token_for(self, username: str) -> str | None:
        """A token minted in-process (for `--demo`); None without a dev issuer or with auth off."""
        return mint_token(self.realm, username) if self.realm is not None else None


def prepare_auth(config: Settings, public_url: str, internal_url: str, data_dir: Path) -> AuthSetup:
    if not config.auth_enabled:
        return AuthSetup({}, None)
    if not config.auth_dev_issuer:
        return AuthSetup({}, None)  # a real identity provider: its settings are already in the environment
    issuer = config.auth_issuer or f"{public_url}/authz/realms/{DEV_REALM}"
    realm = ensure_dev_realm(data_dir, issuer, audience=config.auth_audience, client=config.auth_client)
    realm_path = issuer.split("/authz", 1)[1] if "/authz/" in issuer else f"/realms/{DEV_REALM}"
    env = {
        "DATAFROST_PRESIGN_SECRET": config.presign_secret
        or _local_secret(data_dir / "auth" / "presign-secret"),
        "DATAFROST_AUTH_ISSUER": issuer,
        # functions fetch the keys on the internal listener: no round trip through the public checks
        "DATAFROST_AUTH_JWKS_URL": f"{internal_url}/authz{realm_path}{CERTS_PATH}",
        "DATAFROST_AUTH_SERVICE_CLIENT_ID": realm.service_client_id,
        "DATAFROST_AUTH_SERVICE_CLIENT_SECRET": realm.service_client_secret,
    }
    return AuthSetup(env, realm)


def _local_secret(path: Path) -> str:
    """A random secret kept in the data dir (0600), made on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret
