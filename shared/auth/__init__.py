"""Authentication and authorization: identities from Keycloak-style JWTs, the route policy, the dev issuer.

- `shared.auth.identity`: `Identity` and the role hierarchy (viewer, editor, admin, service);
- `shared.auth.jwks`: `JwksCache`, the identity provider's signing keys;
- `shared.auth.verify`: `TokenVerifier`, `bearer_token`, `verifier_from_settings`;
- `shared.auth.access`: `authorize`, the one access decision (authz and every function call it);
- `shared.auth.policy`: which role a gateway path needs, from the registry's route table;
- `shared.auth.dev_issuer`: the one-machine issuer (`ensure_dev_realm`, `mint_token`).
"""
