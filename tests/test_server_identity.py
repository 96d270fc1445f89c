"""The HTTP API's users, roles, tokens, passwords and configuration routes, on SQLite and
PostgreSQL: each happy path through the service the CLI calls, and the bad paths (wrong role,
unknown objects, malformed bodies, SQL metacharacters) refused with a problem document that
changes nothing."""

from __future__ import annotations

import pytest

from nextstat_pro.db.models import ApiToken, AuditEvent, RoleBinding, User
from nextstat_pro.instance import Instance

from .conftest import PASSWORD
from .server_api_helpers import API, api_client, bearer, events, problem, rows, user_with_role

NEW_PASSWORD = "another-long-passphrase-91"


def test_users_roles_and_tokens_over_http(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    r = client.post(f"{API}/users", headers=admin, json={"username": "carol", "printed_name": "Carol Chem",
                                                          "password": PASSWORD, "email": "carol@example.org"})
    assert r.status_code == 201, r.text
    assert r.json()["username"] == "carol" and not r.json()["disabled"]
    assert [u["username"] for u in client.get(f"{API}/users", headers=admin).json()] == ["admin", "carol"]

    r = client.put(f"{API}/projects/default/roles/carol", headers=admin, json={"role": "editor", "reason": "joins"})
    assert r.status_code == 200 and r.json()["role"] == "editor"
    roles = client.get(f"{API}/projects/default/roles", headers=admin).json()
    assert [(b["username"], b["role"]) for b in roles] == [("carol", "editor")]

    # Carol makes a viewer token: its secret is in that response only, and it works.
    carol = bearer(instance, "carol")
    r = client.post(f"{API}/tokens", headers=carol, json={"project": "default", "role": "viewer", "name": "ci"})
    assert r.status_code == 201, r.text
    issued = r.json()
    token = {"Authorization": f"Bearer {issued['token']}"}
    me = client.get(f"{API}/me", headers=token).json()
    assert (me["username"], me["token_role"], me["token_project"]) == ("carol", "viewer", "default")
    listed = client.get(f"{API}/tokens", headers=carol).json()
    assert issued["token_id"] in {t["token_id"] for t in listed}
    assert issued["token"].split(".")[1] not in client.get(f"{API}/tokens", headers=carol).text
    # The token's role cap holds over HTTP as in the CLI.
    problem(client.post(f"{API}/tokens", headers=token, json={"project": "default", "role": "editor",
                                                               "name": "x"}), 403, 6)

    r = client.post(f"{API}/tokens/{issued['token_id']}/revoke", headers=carol, json={"reason": "rotated"})
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    problem(client.get(f"{API}/me", headers=token), 401, 10)

    r = client.post(f"{API}/projects/default/roles/carol/revoke", headers=admin, json={"reason": "left"})
    assert r.status_code == 200 and r.json()["role"] == "editor"  # the binding as it was
    assert rows(instance, RoleBinding) == 0

    r = client.put(f"{API}/users/carol/auditor", headers=admin, json={"auditor": True, "reason": "QA"})
    assert r.status_code == 200 and r.json()["auditor"]
    r = client.post(f"{API}/users/carol/disable", headers=admin, json={"reason": "left"})
    assert r.status_code == 200 and r.json()["disabled"]
    problem(client.get(f"{API}/me", headers=carol), 401, 10)


def test_an_admin_revokes_anyones_token_a_user_only_their_own(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    vera, eddie = user_with_role(instance, "vera", "viewer"), user_with_role(instance, "eddie", "editor")
    vera_token = client.post(f"{API}/tokens", headers=vera, json={"project": "default", "name": "v"}).json()
    before = events(instance, "access.denied", "token.revoke_any")
    problem(client.post(f"{API}/tokens/{vera_token['token_id']}/revoke", headers=eddie, json={"reason": "x"}), 403, 6)
    assert events(instance, "access.denied", "token.revoke_any") == before + 1
    r = client.post(f"{API}/tokens/{vera_token['token_id']}/revoke", headers=admin, json={"reason": "leaked"})
    assert r.status_code == 200 and r.json()["revoked_at"] is not None


@pytest.mark.parametrize(("method", "path", "body", "operation"), [
    ("get", "/users", None, "user.list"),
    ("post", "/users", {"username": "mallory", "printed_name": "M", "password": PASSWORD}, "user.create"),
    ("post", "/users/admin/disable", {"reason": "x"}, "user.disable"),
    ("put", "/users/admin/auditor", {"auditor": True, "reason": "x"}, "user.set_auditor"),
    ("post", "/users/admin/password-reset", {"reason": "x"}, "user.reset_password"),
    ("post", "/users/admin/password-reset/approve", {"reason": "x"}, "user.approve_reset"),
    ("put", "/projects/default/roles/vera", {"role": "admin", "reason": "x"}, "role.grant"),
    ("post", "/projects/default/roles/vera/revoke", {"reason": "x"}, "role.revoke"),
    ("get", "/config", None, "config.read"),
    ("put", "/config", {"key": "hub_min_years", "value": 0, "reason": "x"}, "instance.configure"),
])
def test_wrong_role_is_refused_audited_and_changes_nothing(sqlite_instance: Instance, method: str, path: str,
                                                           body: dict[str, object] | None, operation: str) -> None:
    """A project viewer on every instance-admin route (SQLite: the refusal path is the same)."""
    inst = sqlite_instance
    client, vera = api_client(inst), user_with_role(inst, "vera", "viewer")
    counts = rows(inst, User), rows(inst, RoleBinding), rows(inst, ApiToken)
    before = events(inst, "access.denied", operation)
    kwargs = {"json": body} if body is not None else {}
    r = client.request(method.upper(), API + path, headers=vera, **kwargs)  # type: ignore[arg-type]
    assert operation in problem(r, 403, 6)["detail"]
    assert events(inst, "access.denied", operation) == before + 1
    assert (rows(inst, User), rows(inst, RoleBinding), rows(inst, ApiToken)) == counts
    assert inst.config.hub_min_years == 10.0


def test_unauthenticated_calls_get_401(sqlite_instance: Instance) -> None:
    client = api_client(sqlite_instance)
    for method, path in (("GET", "/users"), ("POST", "/tokens"), ("GET", "/config"), ("POST", "/me/password")):
        problem(client.request(method, API + path, json={}), 401, 10)
    problem(client.get(f"{API}/users", headers={"Authorization": "Bearer nsp_forged.secret"}), 401, 10)


def test_unknown_objects_are_404(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    problem(client.post(f"{API}/users/nobody/disable", headers=admin, json={"reason": "x"}), 404, 4)
    problem(client.put(f"{API}/projects/nope/roles/admin", headers=admin, json={"role": "viewer", "reason": "x"}),
            404, 4)
    problem(client.get(f"{API}/projects/nope/roles", headers=admin), 404, 4)
    problem(client.post(f"{API}/tokens/0000/revoke", headers=admin, json={"reason": "x"}), 404, 4)
    problem(client.post(f"{API}/tokens", headers=admin, json={"project": "nope", "name": "x"}), 404, 4)


def test_sql_metacharacters_are_text(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    for name in ("x' OR '1'='1", "admin'; DROP TABLE users; --", "%", "_"):
        problem(client.post(f"{API}/users/{name}/disable", headers=admin, json={"reason": "x"}), 404, 4)
        problem(client.get(f"{API}/projects/{name}/roles", headers=admin), 404, 4)
    assert rows(instance, User, User.disabled.is_(False)) == 1
    bad = client.post(f"{API}/users", headers=admin, json={"username": "a'; DROP TABLE users; --",
                                                           "printed_name": "X", "password": PASSWORD})
    problem(bad, 400, 2)
    assert rows(instance, User) == 1


def test_malformed_bodies_and_content_types(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    client, admin = api_client(inst), bearer(inst)
    count = rows(inst, User), rows(inst, AuditEvent)
    json_headers = {**admin, "Content-Type": "application/json"}
    problem(client.post(f"{API}/users", headers=json_headers, content=b'{"username": "x",'), 400, 2)
    problem(client.post(f"{API}/users", headers=json_headers, content=b"[1, 2]"), 400, 2)
    problem(client.post(f"{API}/users", headers={**admin, "Content-Type": "text/plain"},
                        content=b'{"username": "dave", "printed_name": "D", "password": "long-enough-password-1"}'),
            400, 2)  # a JSON body under another media type is not read as JSON
    problem(client.post(f"{API}/users", headers=admin, json={"username": "dave", "printed_name": "D",
                                                             "password": PASSWORD, "role": "admin"}), 400, 2)
    problem(client.put(f"{API}/projects/default/roles/admin", headers=admin, json={"role": "root", "reason": "x"}),
            400, 2)
    problem(client.post(f"{API}/tokens", headers=admin, json={"project": "default", "name": "x", "days": 0}), 400, 2)
    assert (rows(inst, User), rows(inst, AuditEvent)) == count


def test_password_change_and_an_approved_reset(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    eddie = user_with_role(instance, "eddie", "editor")
    problem(client.post(f"{API}/me/password", headers=eddie,
                        json={"current_password": "wrong-password", "new_password": NEW_PASSWORD}), 401, 10)
    r = client.post(f"{API}/me/password", headers=eddie,
                    json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    assert client.post(f"{API}/auth/token", json={"username": "eddie", "password": NEW_PASSWORD}).status_code == 200

    # No SMTP: a reset waits for a second instance admin, who sees the one-time token once.
    client.post(f"{API}/users", headers=admin, json={"username": "boss", "printed_name": "Boss", "password": PASSWORD,
                                                     "instance_admin": True})
    r = client.post(f"{API}/users/eddie/password-reset", headers=admin, json={"reason": "forgot"})
    assert r.status_code == 201 and r.json()["channel"] == "approval"
    problem(client.post(f"{API}/users/eddie/password-reset/approve", headers=admin, json={"reason": "x"}), 403, 6)
    r = client.post(f"{API}/users/eddie/password-reset/approve", headers=bearer(instance, "boss"),
                    json={"reason": "called them"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    bad = client.post(f"{API}/password-reset/complete",
                      json={"username": "eddie", "token": token + "x", "new_password": "third-passphrase-for-eddie"})
    assert bad.status_code in (401, 403) and bad.json()["exit_code"] in (6, 10)
    r = client.post(f"{API}/password-reset/complete",
                    json={"username": "eddie", "token": token, "new_password": "third-passphrase-for-eddie"})
    assert r.status_code == 200 and r.json()["key_after_admin_reset"], r.text
    assert client.post(f"{API}/auth/token", json={"username": "eddie", "password": NEW_PASSWORD}).status_code == 401


def test_config_show_masks_and_set_is_audited(instance: Instance) -> None:
    client, admin = api_client(instance), bearer(instance)
    shown = client.get(f"{API}/config", headers=admin)
    assert shown.status_code == 200
    if "@" in instance.config.db_url and ":" in instance.config.db_url.split("@")[0].split("//")[1]:
        assert ":***@" in shown.json()["db_url"]
    before = events(instance, "config.changed", "hub_min_years")
    r = client.put(f"{API}/config", headers=admin, json={"key": "hub_min_years", "value": 2.5, "reason": "policy"})
    assert r.status_code == 200 and r.json()["hub_min_years"] == 2.5
    assert instance.config.hub_min_years == 2.5
    assert events(instance, "config.changed", "hub_min_years") == before + 1
    r = client.put(f"{API}/config", headers=admin, json={"key": "protected_aliases", "value": ["prod"],
                                                         "reason": "policy"})
    assert r.status_code == 200 and r.json()["protected_aliases"] == ["prod"]
    problem(client.put(f"{API}/config", headers=admin, json={"key": "db_url", "value": "sqlite://", "reason": "x"}),
            400, 2)
    problem(client.put(f"{API}/config", headers=admin, json={"key": "hub_min_years", "value": -1, "reason": "x"}),
            400, 2)
    assert instance.config.hub_min_years == 2.5
    assert events(instance, "config.changed") == before + 2


def test_reset_token_guesses_are_limited_per_address(sqlite_instance: Instance) -> None:
    inst = sqlite_instance
    client = api_client(inst)
    guess = {"username": "admin", "token": "nsp_reset_guess", "new_password": NEW_PASSWORD}
    limit = inst.config.server.login_attempts_per_minute
    for _ in range(limit):
        assert client.post(f"{API}/password-reset/complete", json=guess).status_code in (401, 403)
    problem(client.post(f"{API}/password-reset/complete", json=guess), 429, 10)
    assert events(inst, "auth.refused") >= limit + 1
    assert client.post(f"{API}/auth/token", json={"username": "admin", "password": PASSWORD}).status_code == 429
