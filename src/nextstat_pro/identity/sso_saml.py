"""SAML 2.0 sign-in: this server is the service provider (pysaml2, which calls Debian's xmlsec1).

``start_saml`` sends an AuthnRequest (HTTP-Redirect binding) to the one IdP of the configured
metadata; its id is kept with the browser's state (``sso_pending``: RelayState, used once).
``finish_saml`` accepts the IdP's POSTed response only when the **assertion** is signed by a key
of the IdP's metadata (``want_assertions_signed``: a signed response around an unsigned
assertion is not enough), its audience is our entity id, it answers our request
(``InResponseTo``, unsolicited responses refused) and it has not expired (``NotOnOrAfter``,
with ``sso.clock_skew_s``). An accepted assertion's id is remembered until it expires, so a
replayed response is refused. Every refusal is an ``auth.refused`` event.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.client import Saml2Client  # type: ignore[import-untyped]
from saml2.config import SPConfig  # type: ignore[import-untyped]
from saml2.metadata import create_metadata_string  # type: ignore[import-untyped]
from sqlalchemy import delete

from ..db.types import utcnow
from ..errors import ConfigError
from .auth import Credential
from .sso import FederatedIdentity, new_state, open_pending, refused, sign_in_federated, sso_config, take_pending
from .sso_models import SsoSeenAssertion

if TYPE_CHECKING:
    from ..config import SamlConfig
    from ..instance import Instance

_clients: dict[str, Saml2Client] = {}
_lock = threading.Lock()
# pysaml2's exceptions, by class name, as the check that failed (anything else: "invalid").
_WHY = {"SignatureError": "the assertion's signature does not verify",
        "IncorrectlySigned": "the assertion's signature does not verify",
        "MissingSignature": "the assertion is not signed",
        "ResponseLifetimeExceed": "the response has expired",
        "ToEarly": "the response is not valid yet",
        "UnsolicitedResponse": "the response answers no request of this server",
        "StatusError": "the IdP refused the sign-in"}


def _saml(instance: Instance) -> SamlConfig:
    config = sso_config(instance).saml
    if config is None:
        raise ConfigError("SAML is not configured on this instance (sso.saml)")
    return config


def _client(instance: Instance) -> Saml2Client:
    """The SP of the configuration (its IdP metadata read once per process and configuration)."""
    config = _saml(instance)
    skew = int(sso_config(instance).clock_skew_s)
    key = hashlib.sha256(json.dumps([config.model_dump(), skew], sort_keys=True).encode()).hexdigest()
    with _lock:
        if key in _clients:
            return _clients[key]
    source = config.idp_metadata
    if source.startswith("https://"):
        metadata: dict[str, Any] = {"remote": [{"url": source}]}
    elif "://" in source:
        raise ConfigError("sso.saml.idp_metadata must be a file or an https URL")
    else:
        metadata = {"local": [source]}
    sp = SPConfig()
    try:
        sp.load({
            "entityid": config.sp_entity_id,
            "xmlsec_binary": config.xmlsec_binary,
            "metadata": metadata,
            "accepted_time_diff": skew,
            "allow_unknown_attributes": True,
            "service": {"sp": {
                "endpoints": {"assertion_consumer_service": [(config.acs_url, BINDING_HTTP_POST)]},
                "want_assertions_signed": True,
                "want_response_signed": False,
                "allow_unsolicited": False,
                "authn_requests_signed": False,
            }},
        })
        client = Saml2Client(config=sp)
    except Exception as exc:  # pysaml2 raises many kinds for bad metadata or a missing xmlsec1
        raise ConfigError(f"SAML service provider configuration failed: {exc}") from None
    with _lock:
        _clients[key] = client
    return client


def _idp(client: Saml2Client) -> str:
    idps = list(client.metadata.identity_providers())
    if len(idps) != 1:
        raise ConfigError(f"sso.saml.idp_metadata must describe exactly one IdP (it has {len(idps)})")
    return str(idps[0])


def saml_metadata(instance: Instance) -> str:
    """This SP's metadata (entity id, assertion consumer service), for the IdP's administrator."""
    client = _client(instance)
    return create_metadata_string(None, config=client.config, valid=None, sign=False).decode()  # type: ignore[no-any-return]


def start_saml(instance: Instance) -> tuple[str, str]:
    """Begin a sign-in at the IdP: the URL to send the browser to, and the state (RelayState) it
    must bring back."""
    client = _client(instance)
    state = new_state()
    request_id, info = client.prepare_for_authenticate(entityid=_idp(client), relay_state=state,
                                                       binding=BINDING_HTTP_REDIRECT)
    open_pending(instance, "saml", state, nonce=str(request_id), code_verifier=None)
    return str(dict(info["headers"])["Location"]), state


def finish_saml(instance: Instance, *, saml_response: str, relay_state: str | None, browser_state: str | None,
                client: str | None) -> Credential:
    """Complete a sign-in from the IdP's POST: a session credential, or a refusal."""
    config = _saml(instance)
    sp = _client(instance)
    pending = take_pending(instance, "saml", relay_state, browser_state, client=client)
    if _uses_sha1(saml_response):
        raise refused(instance, "saml", "the response is signed with SHA-1 (configure the IdP for SHA-256)",
                      client=client)
    try:
        response = sp.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                   outstanding={pending.nonce or "": "/"})
    except Exception as exc:  # pysaml2's checks raise; the class names the failed one
        why = _WHY.get(type(exc).__name__, "the response is invalid")
        message = str(exc).lower()
        if "signature missing" in message:
            why = "the assertion is not signed"
        elif "audience" in message:
            why = "the assertion is for another audience"
        raise refused(instance, "saml", why, client=client,
                      detail={"error": f"{type(exc).__name__}: {str(exc)[:160]}"}) from None
    if response is None or response.assertion is None:
        raise refused(instance, "saml", "the response is invalid (for another audience, or empty)", client=client)
    assertion = response.assertion
    if assertion.signature is None:  # want_assertions_signed refused it already; never rely on one place
        raise refused(instance, "saml", "the assertion is not signed", client=client)
    expires = _expiry(assertion)
    issuer = str(response.issuer() or "")
    with instance.db.transaction() as session:
        session.execute(delete(SsoSeenAssertion).where(SsoSeenAssertion.expires_at < utcnow()))
        seen = session.get(SsoSeenAssertion, str(assertion.id)[:300])
        if seen is None:
            session.add(SsoSeenAssertion(assertion_id=str(assertion.id)[:300], issuer=issuer[:500],
                                         expires_at=expires))
    if seen is not None:
        raise refused(instance, "saml", "the assertion was used before (replayed)", client=client,
                      detail={"assertion": str(assertion.id)[:100]})
    ava: dict[str, list[str]] = response.get_identity()
    name_id = response.name_id.text if response.name_id is not None else None
    if not name_id:
        raise refused(instance, "saml", "the assertion names no subject", client=client)
    return sign_in_federated(instance, FederatedIdentity(
        protocol="saml", issuer=issuer, subject=str(name_id),
        username=_first(ava, config.username_attribute), printed_name=_first(ava, config.name_attribute),
        email=_first(ava, config.email_attribute),
        groups=tuple(str(g) for g in ava.get(config.groups_attribute or "", []))), client=client)


_SHA1 = re.compile(rb'Algorithm="http://www\.w3\.org/2000/09/xmldsig#(rsa-|dsa-|hmac-)?sha1"')


def _uses_sha1(saml_response: str) -> bool:
    """A signature or digest with SHA-1 (collisions are practical): refused before verification."""
    try:
        xml = base64.b64decode(saml_response, validate=False)
    except ValueError:
        return False  # pysaml2 refuses what is not base64
    return _SHA1.search(xml) is not None


def _first(ava: dict[str, list[str]], name: str | None) -> str | None:
    values = ava.get(name or "") or []
    return str(values[0]) if values else None


def _expiry(assertion: Any) -> datetime:
    """When the assertion stops being acceptable: the earliest NotOnOrAfter it carries (its
    conditions, its subject confirmations), at most a day from now."""
    ends = []
    if assertion.conditions is not None and assertion.conditions.not_on_or_after:
        ends.append(assertion.conditions.not_on_or_after)
    for confirmation in getattr(assertion.subject, "subject_confirmation", None) or []:
        data = confirmation.subject_confirmation_data
        if data is not None and data.not_on_or_after:
            ends.append(data.not_on_or_after)
    latest = utcnow() + timedelta(days=1)
    parsed = [datetime.strptime(e[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) for e in ends]
    return min([*parsed, latest])
