"""SAML 2.0 sign-in: our service provider against a pysaml2 identity provider in this process,
whose key pair is made here (never committed). The IdP answers our real AuthnRequest with a real
signed response; the bad ones (broken signature, unsigned, replayed, for another audience,
expired) are each refused with a problem, an ``auth.refused`` event and no session."""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import saml2.assertion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from saml2 import BINDING_HTTP_REDIRECT, time_util
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from sqlalchemy import func, select

from nextstat_pro.db.models import User
from nextstat_pro.identity.sso_models import SsoIdentity, SsoSeenAssertion
from nextstat_pro.instance import Instance
from nextstat_pro.server.sessions import COOKIE

from .server_helpers import assert_problem, client_for
from .sso_helpers import configure_sso, events

with warnings.catch_warnings():  # the IdP side only: pysaml2's symmetric ciphers import CFB from its old place
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2.server import Server

IDP = "https://idp.example.test/metadata"
SP = "http://testserver/api/v1/auth/saml/metadata"
ACS = "http://testserver/api/v1/auth/saml/acs"
PEOPLE = {"alice": {"uid": ["alice"], "displayName": ["Alice Saml"], "mail": ["alice@example.org"],
                    "memberOf": ["qa"]}}


def _key_pair(folder: Path) -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate for the IdP (made per test run)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_file, cert_file = folder / "idp.key", folder / "idp.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def _idp_config(key_file: str, cert_file: str, sp_metadata: str | None) -> IdPConfig:
    conf = IdPConfig()
    conf.load({
        "entityid": IDP,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "key_file": key_file,
        "cert_file": cert_file,
        "metadata": {"inline": [sp_metadata]} if sp_metadata else {},
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [("https://idp.example.test/sso", BINDING_HTTP_REDIRECT)]},
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None}},
        }},
    })
    return conf


class _Clock:
    """``time`` for pysaml2's time_util, set ``shift_s`` seconds back: an IdP whose response was
    issued that long ago (the SP, in the same process, keeps the true time)."""

    def __init__(self, shift_s: float) -> None:
        self.shift_s = shift_s

    def gmtime(self, secs: float | None = None) -> time.struct_time:
        return time.gmtime(time.time() - self.shift_s if secs is None else secs)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def issued_ago(minutes: float) -> Iterator[None]:
    shift = dt.timedelta(minutes=minutes)

    class Earlier(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Earlier:  # type: ignore[override]
            return super().now(tz) - shift  # type: ignore[return-value]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time_util, "time", _Clock(shift.total_seconds()))
        mp.setattr(time_util, "datetime", Earlier)
        yield


def _with_id(assertion: Any, assertion_id: str) -> Any:
    assertion.id = assertion_id
    return assertion


class SamlIdP:
    """The identity provider: reads our AuthnRequest, answers with a signed response."""

    def __init__(self, key_file: str, cert_file: str, sp_metadata: str) -> None:
        self.key_file, self.cert_file, self.sp_metadata = key_file, cert_file, sp_metadata

    def respond(self, login_url: str, who: str = "alice", *, audience: str = SP, sign_assertion: bool = True,
                minutes_ago: float = 0, assertion_id: str | None = None) -> tuple[str, str]:
        """The (SAMLResponse, RelayState) the IdP's page would POST to our ACS (issued
        ``minutes_ago``, valid for 15 minutes; ``assertion_id``: an IdP that reuses an id)."""
        query = parse_qs(urlsplit(login_url).query)
        server = Server(config=_idp_config(self.key_file, self.cert_file, self.sp_metadata))
        request = server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        with issued_ago(minutes_ago), pytest.MonkeyPatch.context() as mp:
            if assertion_id is not None:
                made = saml2.assertion.assertion_factory
                mp.setattr(saml2.assertion, "assertion_factory",
                           lambda **kw: _with_id(made(**kw), assertion_id))
            xml = self._response(server, request.message.id, who, audience, sign_assertion)
        return base64.b64encode(str(xml).encode()).decode(), query["RelayState"][0]

    @staticmethod
    def _response(server: Server, request_id: str, who: str, audience: str, sign_assertion: bool) -> Any:
        return server.create_authn_response(
            PEOPLE[who], in_response_to=request_id, destination=ACS, sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"persistent-{who}"), userid=who,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_auth": IDP},
            sign_assertion=sign_assertion, sign_response=False, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)


@pytest.fixture
def saml(instance: Instance, tmp_path: Path) -> tuple[Instance, SamlIdP]:
    key_file, cert_file = _key_pair(tmp_path)
    idp_metadata = tmp_path / "idp-metadata.xml"
    idp_metadata.write_text(create_metadata_string(None, config=_idp_config(key_file, cert_file, None),
                                                   valid=None, sign=False).decode())
    configure_sso(instance, {"saml": {"idp_metadata": str(idp_metadata), "sp_entity_id": SP, "acs_url": ACS},
                             "group_roles": {"qa": {"default": "viewer"}}})
    with client_for(instance) as client:
        r = client.get("/api/v1/auth/saml/metadata")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/samlmetadata+xml")
        assert ACS in r.text and "AssertionConsumerService" in r.text
        sp_metadata = r.text
    return instance, SamlIdP(key_file, cert_file, sp_metadata)


def _login(client: TestClient) -> str:
    r = client.get("/api/v1/auth/saml/login", follow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith("https://idp.example.test/sso?SAMLRequest=")
    return str(r.headers["location"])


def _post(client: TestClient, response: str, relay: str) -> Any:
    return client.post("/api/v1/auth/saml/acs", data={"SAMLResponse": response, "RelayState": relay},
                       follow_redirects=False)


def _users(inst: Instance) -> int:
    with inst.db.read() as s:
        return s.scalar(select(func.count()).select_from(User)) or 0


def test_a_signed_assertion_signs_in_and_provisions(saml: tuple[Instance, SamlIdP]) -> None:
    inst, idp = saml
    with client_for(inst) as client:
        response, relay = idp.respond(_login(client))
        r = _post(client, response, relay)
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        me = client.get("/api/v1/me").json()
        assert me["username"] == "alice" and me["printed_name"] == "Alice Saml" and me["credential"] == "session"
        assert me["roles"] == {"default": "viewer"}
    with inst.db.read() as s:
        bound = s.scalar(select(SsoIdentity))
        assert bound is not None and (bound.protocol, bound.issuer, bound.subject) == ("saml", IDP, "persistent-alice")
        assert s.scalar(select(func.count()).select_from(SsoSeenAssertion)) == 1
    login = events(inst, "auth.login")[-1]
    assert login["after"]["method"] == "saml" and login["after"]["groups"] == ["qa"]


def _refused(inst: Instance, client: TestClient, r: Any, why: str) -> None:
    detail = str(assert_problem(r, 401, 10)["detail"])
    assert why in detail, detail
    assert COOKIE not in r.cookies and client.get("/api/v1/me").status_code == 401
    assert why in events(inst, "auth.refused")[-1]["after"]["reason"]


def test_a_broken_signature_is_refused(saml: tuple[Instance, SamlIdP]) -> None:
    inst, idp = saml
    users = _users(inst)
    with client_for(inst) as client:
        response, relay = idp.respond(_login(client))
        xml = base64.b64decode(response).decode()
        forged = re.sub(r">alice<", ">admin<", xml)  # the signed uid attribute, changed
        assert forged != xml
        _refused(inst, client, _post(client, base64.b64encode(forged.encode()).decode(), relay),
                 "signature does not verify")
        response, relay = idp.respond(_login(client), sign_assertion=False)
        _refused(inst, client, _post(client, response, relay), "not signed")
    assert _users(inst) == users


def test_a_replayed_response_is_refused(saml: tuple[Instance, SamlIdP]) -> None:
    inst, idp = saml
    with client_for(inst) as client:
        response, relay = idp.respond(_login(client))
        assert _post(client, response, relay).status_code == 303
        client.cookies.clear()
        # The same POST again, state cookie and all.
        client.cookies.set("nsp_sso_state", relay, path="/api/v1/auth")
        _refused(inst, client, _post(client, response, relay), "already used")
        # The recorded response under a new sign-in: it answers another request.
        login = _login(client)
        _refused(inst, client, _post(client, response, parse_qs(urlsplit(login).query)["RelayState"][0]),
                 "answers no request")
        # A new, validly signed response to a new request, carrying an assertion id seen before.
        seen = re.search(r'<(?:\w+:)?Assertion [^>]*ID="([^"]+)"', base64.b64decode(response).decode())
        assert seen is not None
        again, relay = idp.respond(_login(client), assertion_id=seen.group(1))
        _refused(inst, client, _post(client, again, relay), "used before (replayed)")
    assert len(events(inst, "auth.login")) == 1


def test_an_assertion_for_another_audience_or_expired_is_refused(saml: tuple[Instance, SamlIdP]) -> None:
    inst, idp = saml
    with client_for(inst) as client:
        response, relay = idp.respond(_login(client), audience="https://another-sp.example.test/metadata")
        _refused(inst, client, _post(client, response, relay), "audience")
        response, relay = idp.respond(_login(client), minutes_ago=20)  # valid until 5 minutes ago
        _refused(inst, client, _post(client, response, relay), "expired")
    assert events(inst, "auth.login") == []
