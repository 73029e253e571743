"""The console's users screen over HTTP, through the real service (in this process): a
biller_admin creates a biller_staff user (its one-time password shown once, to be changed at
the first login, as ``gateway-admin user create`` does), sees its biller's users only, and
disables one, whose open session ends at once; who may (403 for a biller_staff, 404 for
another biller's user), CSRF, and the audit lines."""

from __future__ import annotations

import json
import re

import pytest_twisted

from tests.conftest import Running, admin
from tests.protocols.test_console_http import Client, audit, csrf_of, location, logged_in
from tests.protocols.test_console_webhooks_http import form_id_of


def logins(page: str) -> list[str]:
    return re.findall(r'<tr id="user-([a-z0-9._\-]+)">', page)


@pytest_twisted.ensureDeferred
async def test_a_biller_admin_creates_and_disables_its_users(gateway: Running) -> None:
    gateway.onboard("acme")
    gateway.onboard("beta")
    boss = await logged_in(gateway, "acme-admin", "biller_admin", "acme")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    rival = await logged_in(gateway, "beta-admin", "biller_admin", "beta")

    status, page, _ = await clerk.get("/console/users")
    assert status == 403 and "権限がありません" in page
    status, page, _ = await boss.get("/console/users")
    assert status == 200 and logins(page) == ["acme-admin", "clerk"]  # not beta's
    assert "（ご自身）" in page and page.count('class="stack admin-form disable-form"') == 1

    fields = {"csrf_token": csrf_of(page), "form_id": form_id_of(page), "login": "suzuki"}
    status, page, _ = await boss.post("/console/users", {**fields, "role": "operator"})
    assert status == 422 and "役割：役割を選んでください" in page
    status, page, _ = await boss.post("/console/users", {**fields, "login": "Suzuki!"})
    assert status == 422 and "ログインID：" in page
    status, page, _ = await boss.post(
        "/console/users", {**fields, "login": "clerk", "role": "biller_staff"}
    )
    assert status == 409 and "このログインIDは使われています" in page
    assert (
        await boss.post("/console/users", {**fields, "csrf_token": "", "role": "biller_staff"})
    )[0] == 403
    assert (await clerk.post("/console/users", {**fields, "role": "biller_admin"}))[0] == 403

    # Created: the one-time password shown once; the user must change it at the first login.
    _, page, _ = await boss.get("/console/users")
    fields = {"csrf_token": csrf_of(page), "form_id": form_id_of(page), "login": "suzuki"}
    status, page, _ = await boss.post(
        "/console/users", {**fields, "role": "biller_staff", "biller": "beta"}
    )
    assert status == 200 and "この仮パスワードは今回だけ表示されます" in page
    found = re.search(
        r'id="one-time-password" class="mono" type="text" readonly value="([^"]+)"', page
    )
    assert found and len(found.group(1)) == 20
    password = found.group(1)
    assert logins(page) == ["acme-admin", "clerk", "suzuki"] and "初回ログイン待ち" in page
    status, page, _ = await boss.post(
        "/console/users", {**fields, "role": "biller_staff", "biller": "beta"}
    )
    assert status == 200 and "このフォームは送信済みです" in page and password not in page
    (made,) = [
        u for u in admin(gateway.config_path, "user", "list")["users"] if u["login"] == "suzuki"
    ]
    assert (made["role"], made["biller_id"], made["must_change_password"]) == (
        "biller_staff",
        "acme",
        True,
    )

    suzuki = Client(gateway)
    status, _, headers = await suzuki.login("suzuki", password)
    assert status == 303 and location(headers) == "/console/password"

    # Another biller's admin cannot disable acme's users; nobody disables himself.
    csrf = csrf_of((await rival.get("/console/users"))[1])
    sent = {"csrf_token": csrf, "login": "suzuki", "confirm": "1", "biller": "acme"}
    assert (await rival.post("/console/users/disable", sent))[0] == 404
    _, page, _ = await boss.get("/console/users")
    csrf = csrf_of(page)
    status, page, _ = await boss.post(
        "/console/users/disable", {"csrf_token": csrf, "login": "acme-admin", "confirm": "1"}
    )
    assert status == 422 and "自分のアカウントは無効にできません" in page
    status, page, _ = await boss.post(
        "/console/users/disable", {"csrf_token": csrf, "login": "suzuki"}
    )
    assert status == 422 and "確認のチェックを入れてください" in page
    status, _, headers = await boss.post(
        "/console/users/disable", {"csrf_token": csrf, "login": "suzuki", "confirm": "1"}
    )
    assert status == 303 and location(headers) == "/console/users?disabled=suzuki"
    _, page, _ = await boss.get(location(headers))
    assert "ユーザー suzuki を無効にしました" in page and "status-user-disabled" in page
    # Its open session ended at once; it cannot log in again.
    status, _, headers = await suzuki.get("/console/password")
    assert status == 303 and location(headers) == "/console/login"
    assert (await suzuki.login("suzuki", password))[0] == 401

    # The center's operator acts for the biller it chooses.
    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/users?biller=beta")
    assert status == 200 and logins(page) == ["beta-admin"]

    lines = audit(gateway, "--biller", "acme")
    mine = [(a["action"], a["target"]) for a in lines if a["actor"] == "user:acme-admin"]
    assert sorted(m for m in mine if m[1] == "console_user:suzuki") == [
        ("console_user.create", "console_user:suzuki"),
        ("console_user.disable", "console_user:suzuki"),
    ]
    disabled = next(a for a in lines if a["action"] == "console_user.disable")
    assert disabled["after"]["sessions_ended"] == 1 and disabled["after"]["disabled_at"]
    assert password not in json.dumps(lines)
