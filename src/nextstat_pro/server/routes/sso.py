"""Single sign-on (docs/sso.md): OpenID Connect and SAML 2.0 sign-ins that end in a browser session
exactly like ``POST /auth/session`` (the cookie set by ``set_session_cookie``, the previous session
ended), then a redirect to ``/``; the SP metadata; an SSO user's signature passphrase.

The state of a sign-in in flight is kept server-side (``identity.sso``) and, in a cookie, by the
browser that started it: a callback in another browser is refused. The OIDC cookie is
``SameSite=Lax`` (the provider's redirect back is a top-level GET); the SAML one must travel with
the IdP's cross-site POST, so it is ``SameSite=None`` (``Secure`` behind TLS, as browsers require).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from ...errors import NSPError
from ...identity.auth import Credential, authenticate, logout
from ...identity.sso_oidc import finish_oidc, start_oidc
from ...identity.sso_passphrase import set_signature_passphrase
from ...identity.sso_saml import finish_saml, saml_metadata, start_saml
from ...identity.sso_views import PassphraseSet
from ..auth import Caller, Inst, client_of, codec_of, is_tls, set_session_cookie
from ..sessions import COOKIE
from .prefix import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["single sign-on"])
STATE_COOKIE = "nsp_sso_state"
_SAML_MEDIA = "application/samlmetadata+xml"


def _redirect_with_state(request: Request, url: str, state: str, samesite: Literal["lax", "none"]) -> Response:
    out = RedirectResponse(url, status_code=302)
    minutes = request.app.state.instance.config.sso.login_minutes
    out.set_cookie(STATE_COOKIE, state, max_age=int(minutes * 60), httponly=True, samesite=samesite,
                   secure=is_tls(request), path="/api/v1/auth")
    return out


def _session_started(request: Request, cred: Credential) -> Response:
    """End the browser's previous session (the session id rotates at sign-in), set the new one."""
    out = RedirectResponse("/", status_code=303)
    old = request.cookies.get(COOKIE)
    if old is not None:
        inst = request.app.state.instance
        try:
            logout(inst, authenticate(inst, codec_of(request).decode(old), "api"))
        except NSPError:
            pass  # an expired or foreign cookie: nothing to end
    set_session_cookie(request, out, cred.token)
    out.delete_cookie(STATE_COOKIE, path="/api/v1/auth")
    return out


@router.get("/auth/oidc/login", response_class=RedirectResponse, status_code=302,
            summary="Sign in through the OpenID Connect provider (redirects there)")
def oidc_login(request: Request, inst: Inst) -> Response:
    redirect = start_oidc(inst)
    return _redirect_with_state(request, redirect.url, redirect.state, "lax")


@router.get("/auth/oidc/callback", response_class=RedirectResponse, status_code=303,
            summary="The OpenID Connect provider's redirect back: starts a browser session")
def oidc_callback(request: Request, inst: Inst,
                  state: Annotated[str | None, Query(max_length=200)] = None,
                  code: Annotated[str | None, Query(max_length=2000)] = None,
                  error: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    cred = finish_oidc(inst, state=state, code=code, error=error, browser_state=request.cookies.get(STATE_COOKIE),
                       client=client_of(request))
    return _session_started(request, cred)


@router.get("/auth/saml/login", response_class=RedirectResponse, status_code=302,
            summary="Sign in through the SAML identity provider (redirects there)")
def saml_login(request: Request, inst: Inst) -> Response:
    url, state = start_saml(inst)
    return _redirect_with_state(request, url, state, "none")


@router.post("/auth/saml/acs", response_class=RedirectResponse, status_code=303,
             summary="SAML assertion consumer service: the IdP's POST starts a browser session")
def saml_acs(request: Request, inst: Inst,
             saml_response: Annotated[str, Form(alias="SAMLResponse", min_length=1, max_length=500_000)],
             relay_state: Annotated[str | None, Form(alias="RelayState", max_length=200)] = None) -> Response:
    cred = finish_saml(inst, saml_response=saml_response, relay_state=relay_state,
                       browser_state=request.cookies.get(STATE_COOKIE), client=client_of(request))
    return _session_started(request, cred)


@router.get("/auth/saml/metadata", response_class=Response, summary="This service provider's SAML metadata",
            responses={200: {"content": {_SAML_MEDIA: {}}}})
def saml_sp_metadata(inst: Inst) -> Response:
    return Response(saml_metadata(inst), media_type=_SAML_MEDIA)


class PassphraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    passphrase: str = Field(min_length=1, max_length=1024, description="The new signature passphrase.")
    current_passphrase: str | None = Field(default=None, min_length=1, max_length=1024,
                                           description="Needed to change an existing passphrase.")


@router.post("/auth/signature-passphrase", response_model=PassphraseSet,
             summary="Set or change a single sign-on user's signature passphrase")
def signature_passphrase(inst: Inst, ctx: Caller, body: PassphraseRequest) -> PassphraseSet:
    return set_signature_passphrase(inst, ctx, body.passphrase, body.current_passphrase)
