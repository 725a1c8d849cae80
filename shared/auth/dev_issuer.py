"""The dev issuer: a one-machine identity provider whose tokens look like Keycloak's.

Everything lives in `<data_dir>/auth/` and is created on first use (under a file lock, so the runner
and the authz function can race for it):

- `signing-key.pem` (0600): the RSA key tokens are signed with (RS256); its kid is the key's RFC 7638
  thumbprint, so it stays the same across restarts.
- `users.json` (0600): users (`username`, `id`, `roles`, `password` as an scrypt hash) and clients
  (`client_id`, `roles`, `secret` as an scrypt hash, or `"public": true`). Created with a user `demo`
  (editor), a user `admin` (admin), the public client `datafrost` (the CLI and the web page) and the
  confidential client `datafrost-internal` (role service; internal components use it with the
  client-credentials grant). To add a user, add an entry with a plaintext `password`: it is replaced
  by its hash the next time the realm is loaded.
- `credentials.txt` (0600): the generated plaintext passwords, written once, for the developer.
- `service-client.json` (0600): the internal client's id and secret, for the runner to hand to the
  functions (DATAFROST_AUTH_SERVICE_CLIENT_ID / _SECRET).
- `dev-token-secret` (0600): the secret `POST /dev/token` requires (header X-Dev-Token-Secret), so only
  who can read the data dir mints tokens without a password (`datafrost token` and the CLI read it).

Tokens: header `{"alg": "RS256", "typ": "JWT", "kid"}`; claims `iss`, `aud` = [audience], `azp`,
`sub` (a stable uuid per user or client), `preferred_username`, `realm_access.roles` (Keycloak's
default realm roles), `resource_access.<client>.roles` (the platform roles), `exp`, `iat`, `nbf`,
`jti`, `typ` "Bearer", `scope`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.identity import ADMIN, EDITOR, KNOWN_ROLES, SERVICE
from shared.auth.verify import CERTS_PATH, DEFAULT_DEV_ISSUER, TOKEN_PATH, realm_of

DEMO_USER = "demo"  # the realm's first user (editor): the CLI's default, with an uploads folder
PUBLIC_CLIENT = "datafrost"
SERVICE_CLIENT = "datafrost-internal"
DEFAULT_TTL = 300
DEV_TOKEN_SECRET_FILE = "dev-token-secret"
MAX_TTL = 24 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class DevRealmError(ValueError):
    """The realm's files are unusable, or a mint request names an unknown user or role."""


# -- secrets --------------------------------------------------------------------------------------
def hash_secret(secret: str) -> str:
    """An scrypt hash: `scrypt$n$r$p$<salt b64>$<hash b64>`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_secret(secret: str, stored: str | None) -> bool:
    """Whether `secret` matches the stored hash (constant time; a malformed hash matches nothing)."""
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY_HASH).split("$")
        if kind != "scrypt" or int(n) > 2**20 or int(r) > 16 or int(p) > 4:
            return False
        expected = base64.b64decode(digest)
        given = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return stored is not None and hmac.compare_digest(given, expected)


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("scrypt$") and value.count("$") == 5


# -- the realm --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevUser:
    username: str
    id: str
    roles: tuple[str, ...]
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class DevClient:
    client_id: str
    id: str  # the service account's user id (the `sub` of client-credentials tokens)
    roles: tuple[str, ...]
    secret_hash: str | None = field(repr=False)  # None: a public client

    @property
    def public(self) -> bool:
        return self.secret_hash is None


@dataclass(frozen=True)
class DevRealm:
    """The dev issuer's realm as loaded from `<data_dir>/auth/`."""

    directory: Path
    issuer: str
    audience: str
    client: str  # the client whose resource_access roles carry the platform roles
    users: Mapping[str, DevUser]
    clients: Mapping[str, DevClient]
    signing_key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    service_client_id: str
    service_client_secret: str = field(repr=False)
    dev_token_secret: str = field(repr=False)  # what POST /dev/token requires

    @property
    def name(self) -> str:
        return realm_of(self.issuer)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (Keycloak's certs endpoint)."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key()))
        return {"keys": [{"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", **_public(jwk)}]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata (the parts this issuer supports)."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.issuer + TOKEN_PATH,
            "jwks_uri": self.issuer + CERTS_PATH,
            "grant_types_supported": ["password", "client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "iss", "aud", "azp", "preferred_username", "realm_access"],
        }

    def authenticate_user(self, username: str, password: str) -> DevUser | None:
        user = self.users.get(username)
        ok = check_secret(password, user.password_hash if user else None)  # same work for unknown users
        return user if ok else None

    def authenticate_client(self, client_id: str, secret: str | None) -> DevClient | None:
        """The client when its secret matches (a public client needs none and must not send one)."""
        client = self.clients.get(client_id)
        if client is None:
            check_secret(secret or "", None)
            return None
        if client.public:
            return client if not secret else None
        return client if secret is not None and check_secret(secret, client.secret_hash) else None


def _public(jwk: Mapping[str, Any]) -> dict[str, Any]:
    return {k: jwk[k] for k in ("n", "e")}


def _thumbprint(key: rsa.RSAPrivateKey) -> str:
    """RFC 7638 JWK thumbprint of the public key (base64url, no padding)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


# -- files --------------------------------------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (created 0600, never wider, then renamed over the old one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _signing_key(directory: Path) -> rsa.RSAPrivateKey:
    path = directory / "signing-key.pem"
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise DevRealmError(f"{path} is not an RSA private key")
    return loaded


def _first_config(directory: Path) -> tuple[dict[str, Any], str]:
    """The initial users.json, and the credentials.txt that tells the developer the passwords."""
    passwords = {"demo": secrets.token_urlsafe(12), "admin": secrets.token_urlsafe(12)}
    config = {
        "users": [
            {"username": "demo", "id": str(uuid.uuid4()), "roles": [EDITOR], "password": passwords["demo"]},
            {"username": "admin", "id": str(uuid.uuid4()), "roles": [ADMIN], "password": passwords["admin"]},
        ],
        "clients": [
            {"client_id": PUBLIC_CLIENT, "id": str(uuid.uuid4()), "roles": [], "public": True},
            {
                "client_id": SERVICE_CLIENT,
                "id": str(uuid.uuid4()),
                "roles": [SERVICE],
                "secret": secrets.token_urlsafe(32),
            },
        ],
    }
    lines = [
        "# DataFrost dev issuer: the generated passwords (written once; users.json keeps only hashes).",
        f"# Get a token: datafrost token --user NAME, or POST {TOKEN_PATH} with grant_type=password.",
        *(f"{name}\t{password}" for name, password in passwords.items()),
    ]
    return config, "\n".join(lines) + "\n"


def _load_config(directory: Path) -> dict[str, Any]:
    """users.json (created on first use); plaintext passwords and secrets are hashed in place."""
    path = directory / "users.json"
    secret_file = directory / "service-client.json"
    if path.exists():
        try:
            config = json.loads(path.read_text())
        except ValueError as exc:
            raise DevRealmError(f"{path} is not valid JSON: {exc}") from None
    else:
        config, credentials = _first_config(directory)
        _write_private(directory / "credentials.txt", credentials.encode())
    changed = not path.exists()
    for client in config.get("clients", []):
        if (
            client.get("client_id") == SERVICE_CLIENT
            and "secret" in client
            and not _is_hash(client["secret"])
        ):
            body = {"client_id": SERVICE_CLIENT, "client_secret": client["secret"]}
            _write_private(secret_file, json.dumps(body).encode())
    for entry, key in [(u, "password") for u in config.get("users", [])] + [
        (c, "secret") for c in config.get("clients", [])
    ]:
        if not isinstance(entry, dict):
            raise DevRealmError(f"{path}: every user and client must be a JSON object")
        if key in entry and not _is_hash(entry[key]):
            entry[key] = hash_secret(str(entry[key]))
            changed = True
        if not entry.get("id"):
            entry["id"] = str(uuid.uuid4())
            changed = True
    if changed:
        _write_private(path, (json.dumps(config, indent=2) + "\n").encode())
    return dict(config)


def _roles(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise DevRealmError(f"{where}: roles must be a list of strings")
    return tuple(roles)


def _parse(config: Mapping[str, Any], path: Path) -> tuple[dict[str, DevUser], dict[str, DevClient]]:
    users: dict[str, DevUser] = {}
    for entry in config.get("users", []):
        name = entry.get("username")
        if not isinstance(name, str) or not name or not _is_hash(entry.get("password")):
            raise DevRealmError(f"{path}: every user needs a username and a password")
        users[name] = DevUser(name, str(entry["id"]), _roles(entry, f"{path} user {name}"), entry["password"])
    clients: dict[str, DevClient] = {}
    for entry in config.get("clients", []):
        client_id = entry.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise DevRealmError(f"{path}: every client needs a client_id")
        secret = entry.get("secret")
        if not entry.get("public") and not _is_hash(secret):
            raise DevRealmError(f'{path}: client {client_id} needs a secret or "public": true')
        clients[client_id] = DevClient(
            client_id,
            str(entry["id"]),
            _roles(entry, f"{path} client {client_id}"),
            None if entry.get("public") else secret,
        )
    return users, clients


def ensure_dev_realm(
    data_dir: Path | str,
    issuer: str | None = None,
    *,
    audience: str = "datafrost",
    client: str = PUBLIC_CLIENT,
) -> DevRealm:
    """Create (first time) or load the dev realm under `<data_dir>/auth/`; safe from several processes.

    `issuer` is the URL tokens carry as `iss` (default: the dev issuer under the default gateway).
    The returned realm holds the internal client's id and secret (`service_client_id`/`_secret`).
    """
    directory = Path(data_dir) / "auth"
    with _locked(directory):
        key = _signing_key(directory)
        config = _load_config(directory)
        users, clients = _parse(config, directory / "users.json")
        service = _service_credentials(directory)
        dev_secret = _dev_token_secret(directory)
    return DevRealm(
        directory=directory,
        issuer=(issuer or DEFAULT_DEV_ISSUER).rstrip("/"),
        audience=audience,
        client=client,
        users=users,
        clients=clients,
        signing_key=key,
        kid=_thumbprint(key),
        service_client_id=service[0],
        service_client_secret=service[1],
        dev_token_secret=dev_secret,
    )


def _service_credentials(directory: Path) -> tuple[str, str]:
    path = directory / "service-client.json"
    try:
        body = json.loads(path.read_text())
        return str(body["client_id"]), str(body["client_secret"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DevRealmError(
            f"{path} is missing or unreadable: remove {directory} to recreate the dev realm"
        ) from None


def dev_token_secret_path(data_dir: Path | str) -> Path:
    """Where the dev token secret of the platform using `data_dir` is kept."""
    return Path(data_dir) / "auth" / DEV_TOKEN_SECRET_FILE


def read_dev_token_secret(data_dir: Path | str) -> str | None:
    """The dev token secret of the platform using `data_dir`; None when there is none (or unreadable)."""
    try:
        return dev_token_secret_path(data_dir).read_text().strip() or None
    except OSError:
        return None


def _dev_token_secret(directory: Path) -> str:
    """The dev token secret, made on first use (a random 256-bit value, 0600)."""
    path = directory / DEV_TOKEN_SECRET_FILE
    if not path.exists() or not path.read_text().strip():
        _write_private(path, secrets.token_urlsafe(32).encode())
    return path.read_text().strip()


DEV_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # also the first segment of its keys


def add_dev_user(realm: DevRealm, username: str, roles: Sequence[str] = (EDITOR,)) -> DevRealm:
    """The realm reloaded with `username` in it, added to users.json (with `roles` and a generated
    password, appended to credentials.txt) unless it is there already; DevRealmError for a name or
    role the realm cannot hold."""
    if not isinstance(username, str) or not DEV_USERNAME.fullmatch(username):
        raise DevRealmError(
            f"user name {username[:80]!r} must be 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    unknown = sorted(set(roles) - set(KNOWN_ROLES))
    if unknown:
        raise DevRealmError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_ROLES)}")
    with _locked(realm.directory):
        config = _load_config(realm.directory)
        if not any(u.get("username") == username for u in config.get("users", [])):
            password = secrets.token_urlsafe(12)
            entry = {"username": username, "id": str(uuid.uuid4()), "roles": list(roles)}
            config.setdefault("users", []).append({**entry, "password": hash_secret(password)})
            _write_private(realm.directory / "users.json", (json.dumps(config, indent=2) + "\n").encode())
            credentials = realm.directory / "credentials.txt"
            lines = credentials.read_text() if credentials.exists() else ""
            _write_private(credentials, f"{lines}{username}\t{password}\n".encode())
    return ensure_dev_realm(
        realm.directory.parent, realm.issuer, audience=realm.audience, client=realm.client
    )


# -- tokens -----------------------------------------------------------------------------------------
def _sign(
    realm: DevRealm, subject: str, username: str, azp: str, roles: Sequence[str], ttl: int, **extra: Any
) -> str:
    if not 1 <= ttl <= MAX_TTL:
        raise DevRealmError(f"ttl must be from 1 to {MAX_TTL} seconds")
    now = int(time.time())
    claims: dict[str, Any] = {
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
        "iss": realm.issuer,
        "aud": [realm.audience],
        "sub": subject,
        "typ": "Bearer",
        "azp": azp,
        "acr": "1",
        "realm_access": {"roles": [f"default-roles-{realm.name}", "offline_access", "uma_authorization"]},
        "resource_access": {realm.client: {"roles": sorted(set(roles))}},
        "scope": "profile email",
        "preferred_username": username,
        **extra,
    }
    return jwt.encode(claims, realm.signing_key, algorithm="RS256", headers={"kid": realm.kid, "typ": "JWT"})


def mint_token(
    realm: DevRealm,
    username: str,
    roles: Sequence[str] | None = None,
    ttl: int = DEFAULT_TTL,
    *,
    client_id: str = PUBLIC_CLIENT,
) -> str:
    """A token for a user of the realm (dev only: no password asked); `roles` replaces the user's own."""
    user = realm.users.get(username)
    if user is None:
        raise DevRealmError(f"no user {username!r} in the dev realm")
    chosen = user.roles if roles is None else tuple(roles)
    unknown = sorted(set(chosen) - set(KNOWN_ROLES))
    if unknown:
        raise DevRealmError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_ROLES)}")
    return _sign(realm, user.id, user.username, client_id, chosen, ttl)


def mint_service_token(realm: DevRealm, client_id: str, ttl: int = DEFAULT_TTL) -> str:
    """A client-credentials token for a confidential client (its service account), as Keycloak issues."""
    client = realm.clients[client_id]
    return _sign(
        realm,
        client.id,
        f"service-account-{client_id}",
        client_id,
        client.roles,
        ttl,
        client_id=client_id,
    )
