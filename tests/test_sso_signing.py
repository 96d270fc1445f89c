"""Part 11 e-signatures of single sign-on users: a signature passphrase of their own encrypts their
signing key (the IdP session alone never unlocks it), set once from a session, needed at every
signing with the re-authentication rules unchanged; the exported run still verifies offline."""

from __future__ import annotations

from pathlib import Path

from nextstat_pro.identity.auth import authenticate, create_token
from nextstat_pro.identity.sso import FederatedIdentity, sign_in_federated
from nextstat_pro.instance import Instance
from nextstat_pro.runs import export_run
from nextstat_pro.verify import verify_run_folder

from .server_helpers import assert_problem, client_for, run_fit, token
from .sso_helpers import configure_sso, events

PASSPHRASE = "lantern-harbour-quietly-47"
SIGN = {"meaning": "review", "reason": "checked the pulls"}


def _sso_user(inst: Instance, username: str) -> dict[str, str]:
    """A bearer header for a session of an SSO user (the identity as a protocol hands it over)."""
    cred = sign_in_federated(inst, FederatedIdentity("oidc", "https://idp.example.test", f"subject-{username}",
                                                     username, f"{username.title()} Signer", None, ("reviewers",)))
    return {"Authorization": f"Bearer {cred.token}"}


def test_an_sso_user_sets_a_passphrase_and_signs(instance: Instance, tmp_path: Path) -> None:
    configure_sso(instance, {"oidc": {"issuer": "https://idp.example.test", "client_id": "nsp",
                                      "redirect_url": "https://nsp.example.test/api/v1/auth/oidc/callback"},
                             "group_roles": {"reviewers": {"default": "viewer"}}})
    with client_for(instance) as c:
        run_id = run_fit(c, token(c))["run_id"]
        h = _sso_user(instance, "sid")
        sign = f"/api/v1/runs/{run_id}/signatures"
        # No passphrase yet: the IdP session alone cannot sign.
        problem = assert_problem(c.post(sign, headers=h, json={**SIGN, "password": PASSPHRASE, "username": "sid"}),
                                 401, 10)
        assert "no signature passphrase yet" in str(problem["detail"])
        # The instance's password policy applies to the passphrase.
        assert_problem(c.post("/api/v1/auth/signature-passphrase", headers=h, json={"passphrase": "short"}), 400, 2)
        r = c.post("/api/v1/auth/signature-passphrase", headers=h, json={"passphrase": PASSPHRASE})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["first"] is True and first["username"] == "sid" and first["key_id"]
        # The passphrase is no local password: signing in with it is refused.
        assert_problem(c.post("/api/v1/auth/token", json={"username": "sid", "password": PASSPHRASE}), 401, 10)
        # A wrong passphrase is refused and counted like a wrong password.
        wrong = {**SIGN, "password": PASSPHRASE + "x", "username": "sid"}
        refused = assert_problem(c.post(sign, headers=h, json=wrong), 401, 10)
        assert "wrong signature passphrase" in str(refused["detail"])
        assert events(instance, "auth.failed")[-1]["after"]["purpose"] == f"signing run {run_id}"
        # §11.200 unchanged: the first signing of a session needs the username too.
        no_name = {**SIGN, "password": PASSPHRASE}
        assert "username and password" in str(assert_problem(c.post(sign, headers=h, json=no_name), 401, 10)["detail"])
        r = c.post(sign, headers=h, json={**SIGN, "password": PASSPHRASE, "username": "sid"})
        assert r.status_code == 201, r.text
        # Changing the passphrase needs the current one; the key stays, re-encrypted.
        new = "copper-meadow-listens-83"
        assert_problem(c.post("/api/v1/auth/signature-passphrase", headers=h, json={"passphrase": new}), 401, 10)
        r = c.post("/api/v1/auth/signature-passphrase", headers=h,
                   json={"passphrase": new, "current_passphrase": PASSPHRASE})
        assert r.status_code == 200 and r.json() == {**first, "first": False}
        # A local account has no passphrase to set.
        assert_problem(c.post("/api/v1/auth/signature-passphrase", headers=token(c), json={"passphrase": new}), 400, 2)
        assert c.post("/api/v1/audit/verify", headers=token(c)).json()["ok"] is True
    signed = events(instance, "run.signed")[-1]
    assert signed["after"]["signer_username"] == "sid" and signed["after"]["key_id"] == first["key_id"]
    assert signed["after"]["key_after_admin_reset"] is False
    export_run(instance, instance.context(), run_id, tmp_path / "export")
    verified = verify_run_folder(tmp_path / "export")
    assert [(p["signer"]["username"], p["meaning"]) for p in verified.signatures] == [("sid", "review")]


def test_the_first_passphrase_is_not_set_with_an_api_token(instance: Instance) -> None:
    configure_sso(instance, {"oidc": {"issuer": "https://idp.example.test", "client_id": "nsp",
                                      "redirect_url": "https://nsp.example.test/api/v1/auth/oidc/callback"},
                             "group_roles": {"reviewers": {"default": "viewer"}}})
    session = _sso_user(instance, "tess")["Authorization"].removeprefix("Bearer ")
    api = create_token(instance, authenticate(instance, session), "default", "viewer", "ci", 1)
    with client_for(instance) as c:
        r = c.post("/api/v1/auth/signature-passphrase", headers={"Authorization": f"Bearer {api.token}"},
                   json={"passphrase": PASSPHRASE})
        assert "not with an API token" in str(assert_problem(r, 401, 10)["detail"])
    assert events(instance, "user.passphrase_set") == []
