"""Authentication and authorization: identities from Keycloak-style JWTs, the route policy, the dev issuer.

- `shared.auth.identity`: `Identity` and the role hierarchy (viewer, editor, admin, service);
- `shared.auth.jwks`: `JwksCache`, the identity provider's signing keys;
- `shared.auth.verify`: `TokenVerifier`, `bearer_token`, `verifier_from_settings`, `default_verifier`;
- `shared.auth.policy`: which role each route needs;
- `shared.auth.dev_issuer`: the one-machine issuer (`ensure_dev_realm`, `mint_token`).
"""
