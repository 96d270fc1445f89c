"""OpenID Connect sign-in: authorization code with PKCE (Authlib), the ID token verified here.

``start_oidc`` makes the state, nonce and PKCE verifier, keeps them server-side (``sso_pending``,
used once) and returns the provider's authorization URL; the browser keeps the state in a cookie
so that a callback is accepted only in the browser that started it (no login CSRF).
``finish_oidc`` takes the pending sign-in, exchanges the code (with the verifier and the client
secret) and accepts the ID token only when: its signature verifies against a key of the
provider's JWKS with an allowed algorithm, ``iss`` is the configured issuer, ``aud`` holds our
client id (``azp`` too when there are several audiences), it has not expired, and ``nonce`` is the
one sent. Every refusal is an ``auth.refused`` event naming the failed check.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from ..errors import ConfigError
from .auth import Credential
from .sso import FederatedIdentity, new_state, open_pending, refused, sign_in_federated, sso_config, take_pending

if TYPE_CHECKING:
    from ..config import OidcConfig
    from ..instance import Instance

_METADATA_TTL_S = 3600.0


@dataclass(frozen=True)
class AuthorizationRedirect:
    """Where to send the browser, and the state it must bring back (kept in a cookie)."""

    url: str
    state: str


@dataclass
class _Provider:
    metadata: dict[str, Any]
    jwks: dict[str, Any]
    fetched: float


_cache: dict[str, _Provider] = {}
_cache_lock = threading.Lock()


def _oidc(instance: Instance) -> OidcConfig:
    config = sso_config(instance).oidc
    if config is None:
        raise ConfigError("OpenID Connect is not configured on this instance (sso.oidc)")
    return config


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    try:
        r = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        r.raise_for_status()
        doc = r.json()
    except (requests.RequestException, ValueError) as exc:
        raise ConfigError(f"OpenID provider unreachable or invalid at {url}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"OpenID provider answered {url} with no JSON object")
    return doc


def _provider(config: OidcConfig, *, refresh: bool = False) -> _Provider:
    """The provider's discovery document and keys, cached per process for an hour (refreshed at
    once when a token names a key we do not have: the provider rotated its keys)."""
    with _cache_lock:
        cached = _cache.get(config.issuer)
        if cached is not None and not refresh and time.monotonic() - cached.fetched < _METADATA_TTL_S:
            return cached
    metadata = _get_json(config.issuer.rstrip("/") + "/.well-known/openid-configuration", config.timeout_s)
    if metadata.get("issuer") != config.issuer:
        raise ConfigError(f"the OpenID provider at {config.issuer} calls itself {metadata.get('issuer')!r}: "
                          "sso.oidc.issuer must be exactly its issuer")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(key), str):
            raise ConfigError(f"the OpenID provider's discovery document has no {key}")
    provider = _Provider(metadata, _get_json(metadata["jwks_uri"], config.timeout_s), time.monotonic())
    with _cache_lock:
        _cache[config.issuer] = provider
    return provider


def start_oidc(instance: Instance) -> AuthorizationRedirect:
    """Begin a sign-in at the provider (public: nobody is signed in yet)."""
    config = _oidc(instance)
    provider = _provider(config)
    state, nonce = new_state(), new_state()
    verifier = new_state() + new_state()  # 86 characters: RFC 7636 asks 43..128
    open_pending(instance, "oidc", state, nonce=nonce, code_verifier=verifier)
    client = OAuth2Session(config.client_id, scope=" ".join(config.scopes), redirect_uri=config.redirect_url,
                           code_challenge_method="S256")
    url, _ = client.create_authorization_url(provider.metadata["authorization_endpoint"], state=state,
                                             nonce=nonce, code_verifier=verifier)
    assert create_s256_code_challenge(verifier) in url  # PKCE is never silently dropped
    return AuthorizationRedirect(str(url), state)


def finish_oidc(instance: Instance, *, state: str | None, code: str | None, error: str | None,
                browser_state: str | None, client: str | None) -> Credential:
    """Complete a sign-in from the provider's redirect: a session credential, or a refusal."""
    config = _oidc(instance)
    pending = take_pending(instance, "oidc", state, browser_state, client=client)
    if error is not None or not code:
        raise refused(instance, "oidc", f"the provider answered {str(error or 'no code')[:100]!r}", client=client)
    provider = _provider(config)
    secret = None
    if config.client_secret_env:
        secret = os.environ.get(config.client_secret_env)
        if secret is None:
            raise ConfigError(f"sso.oidc.client_secret_env names ${config.client_secret_env}, which is not set")
    session = OAuth2Session(config.client_id, secret, redirect_uri=config.redirect_url,
                            token_endpoint_auth_method="client_secret_basic" if secret else "none")
    try:
        token = session.fetch_token(provider.metadata["token_endpoint"], grant_type="authorization_code",
                                    code=code, code_verifier=pending.code_verifier, timeout=config.timeout_s)
    except Exception as exc:  # Authlib raises OAuthError, requests its own: both mean no token
        raise refused(instance, "oidc", "the provider refused the code exchange",
                      client=client, detail={"error": str(exc)[:200]}) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise refused(instance, "oidc", "the provider sent no ID token", client=client)
    claims = verify_id_token(instance, config, id_token, nonce=pending.nonce or "", client=client)
    claims = _with_userinfo(instance, config, provider, claims, token.get("access_token"), client)
    return sign_in_federated(instance, _identity(config, claims), client=client)


def verify_id_token(instance: Instance, config: OidcConfig, id_token: str, *, nonce: str,
                    client: str | None) -> dict[str, Any]:
    """The claims of a verified ID token, or a refusal naming the failed check."""
    provider = _provider(config)
    decoded = None
    for attempt in (0, 1):
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(provider.jwks),  # type: ignore[arg-type]
                                 algorithms=list(config.algorithms))
            break
        except BadSignatureError:
            raise refused(instance, "oidc", "the ID token's signature does not verify", client=client) from None
        except (JoseError, ValueError) as exc:
            if attempt == 0 and "key" in str(exc).lower():
                provider = _provider(config, refresh=True)  # a rotated key: fetch the JWKS once more
                continue
            raise refused(instance, "oidc", "the ID token is malformed or signed with a key or algorithm "
                          "the provider does not publish", client=client, detail={"error": str(exc)[:200]}) from None
    assert decoded is not None
    claims = dict(decoded.claims)
    skew = int(sso_config(instance).clock_skew_s)
    registry = jwt.JWTClaimsRegistry(leeway=skew, iss={"essential": True, "value": config.issuer},
                                     aud={"essential": True, "value": config.client_id},
                                     sub={"essential": True}, exp={"essential": True}, iat={"essential": True})
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise refused(instance, "oidc", "the ID token has expired", client=client) from None
    except (InvalidClaimError, MissingClaimError) as exc:
        name = getattr(exc, "claim", "") or str(exc)
        raise refused(instance, "oidc", f"the ID token's {name} is wrong or missing", client=client,
                      detail={"claim": str(name)[:40]}) from None
    except JoseError as exc:
        raise refused(instance, "oidc", "the ID token's claims are invalid", client=client,
                      detail={"error": str(exc)[:200]}) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise refused(instance, "oidc", "the ID token's azp is wrong or missing", client=client,
                      detail={"claim": "azp"})
    if not isinstance(claims.get("nonce"), str) or not nonce or \
            not _same(claims["nonce"], nonce):
        raise refused(instance, "oidc", "the ID token's nonce is wrong or missing", client=client,
                      detail={"claim": "nonce"})
    return claims


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _with_userinfo(instance: Instance, config: OidcConfig, provider: _Provider, claims: dict[str, Any],
                   access_token: object, client: str | None) -> dict[str, Any]:
    """The ID token's claims, completed from the userinfo endpoint when the username or groups
    claim is not in the token (its ``sub`` must be the token's)."""
    wanted = [config.username_claim] + ([config.groups_claim] if config.groups_claim else [])
    endpoint = provider.metadata.get("userinfo_endpoint")
    if all(c in claims for c in wanted) or not isinstance(endpoint, str) or not isinstance(access_token, str):
        return claims
    try:
        r = requests.get(endpoint, timeout=config.timeout_s, headers={"Authorization": f"Bearer {access_token}"})
        r.raise_for_status()
        info = r.json()
    except (requests.RequestException, ValueError):
        return claims
    if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
        raise refused(instance, "oidc", "the userinfo subject is not the ID token's", client=client)
    return {**info, **claims}


def _identity(config: OidcConfig, claims: dict[str, Any]) -> FederatedIdentity:
    groups = claims.get(config.groups_claim) if config.groups_claim else None
    if isinstance(groups, str):
        groups = [groups]
    name, email, username = (claims.get(c) for c in (config.name_claim, config.email_claim, config.username_claim))
    return FederatedIdentity(
        protocol="oidc", issuer=config.issuer, subject=str(claims["sub"]),
        username=username if isinstance(username, str) else None,
        printed_name=name if isinstance(name, str) else None, email=email if isinstance(email, str) else None,
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ())
