"""The console's API-key screen over HTTP, through the real service (in this process): a
biller_admin creates a named key (shown once, with its warning; the same form again makes no
second key), sees it listed by name, prefix and last use (never the key), revokes it after the
confirmation, and the API refuses it; who may (403 for a biller_staff, 404 for another
biller's key), CSRF, and the audit lines. In a real browser: tests/test_console_admin_e2e.py."""

from __future__ import annotations

import json
import re

import pytest_twisted

from gateway.billing.keys import hash_key
from tests.conftest import Running, admin
from tests.protocols.test_console_http import audit, csrf_of, location, logged_in
from tests.protocols.test_console_webhooks_http import form_id_of


def listed(page: str) -> dict[str, str]:
    """key id → what its row's state cell says."""
    found = {}
    for m in re.finditer(r'<tr id="key-(key_[0-9a-f]{16})">(.*?)</tr>', page, re.S):
        state = re.search(r'class="key-state"><span class="status [\w-]+">([^<]*)<', m.group(2))
        assert state, m.group(2)
        found[m.group(1)] = state.group(1)
    return found


@pytest_twisted.ensureDeferred
async def test_a_biller_admin_creates_and_revokes_an_api_key(gateway: Running) -> None:
    gateway.onboard("acme")  # its first key, made by gateway-admin
    gateway.onboard("beta")
    beta_key = admin(gateway.config_path, "key", "list", "--biller", "beta")["keys"][0]["key_id"]
    boss = await logged_in(gateway, "acme-admin", "biller_admin", "acme")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    rival = await logged_in(gateway, "beta-admin", "biller_admin", "beta")

    status, page, _ = await clerk.get("/console/api-keys")
    assert status == 403 and "権限がありません" in page
    status, page, _ = await boss.get("/console/api-keys")
    assert status == 200 and len(listed(page)) == 1 and beta_key not in page
    (first,) = listed(page)
    assert "（名前なし）" in page and listed(page)[first] == "有効"

    # Created with a name: the key once, with its warning.
    fields = {
        "csrf_token": csrf_of(page),
        "form_id": form_id_of(page),
        "name": "基幹システム（本番）",
    }
    assert (await boss.post("/console/api-keys", {**fields, "name": " "}))[0] == 422
    assert (await boss.post("/console/api-keys", {**fields, "csrf_token": "x"}))[0] == 403
    assert (await clerk.post("/console/api-keys", fields))[0] == 403
    status, page, _ = await boss.post("/console/api-keys", fields)
    assert status == 200 and "このキーは今回だけ表示されます" in page
    key = re.search(r'id="new-key" class="mono" type="text" readonly value="(gw_[^"]+)"', page)
    assert key, page
    new = next(k for k in listed(page) if k != first)
    assert f'<td data-label="キーの先頭" class="mono key-prefix">{key.group(1)[:7]}…</td>' in page
    assert key.group(1).count(key.group(1)[7:]) == 1 and page.count(key.group(1)) == 1

    # The same form again: no second key, and the key is not shown again.
    status, page, _ = await boss.post("/console/api-keys", fields)
    assert status == 200 and "このフォームは送信済みです" in page and key.group(1) not in page
    assert len(listed(page)) == 2

    # The key works; the list says when it was last used, never the key.
    headers = {"Authorization": f"Bearer {key.group(1)}"}
    status, _, _ = await gateway.request("GET", "/v1/bills", headers=headers)
    assert status == 200
    _, page, _ = await boss.get("/console/api-keys")
    row = re.search(rf'<tr id="key-{new}">(.*?)</tr>', page, re.S)
    assert row and "基幹システム（本番）" in row.group(1) and "未使用" not in row.group(1)
    assert key.group(1) not in page and hash_key(key.group(1)) not in page

    # Another biller's admin cannot revoke it (nor can the form name another biller).
    csrf = csrf_of((await rival.get("/console/api-keys"))[1])
    sent = {"csrf_token": csrf, "key_id": new, "confirm": "1", "biller": "acme"}
    assert (await rival.post("/console/api-keys/revoke", sent))[0] == 404
    # Revoked after the confirmation box only.
    csrf = csrf_of(page)
    revoke = {"csrf_token": csrf, "key_id": new}
    status, page, _ = await boss.post("/console/api-keys/revoke", revoke)
    assert status == 422 and "確認のチェックを入れてください" in page
    assert (
        await boss.post("/console/api-keys/revoke", {**revoke, "key_id": beta_key, "confirm": "1"})
    )[0] == 404
    status, _, headers_ = await boss.post("/console/api-keys/revoke", {**revoke, "confirm": "1"})
    assert status == 303 and location(headers_) == f"/console/api-keys?revoked={new}"
    _, page, _ = await boss.get(location(headers_))
    assert f"キー {new} を無効にしました" in page and listed(page)[new].startswith("無効")
    assert listed(page)[first] == "有効"
    status, _, _ = await gateway.request("GET", "/v1/bills", headers=headers)
    assert status == 401  # auth_cache_seconds = 0 here

    # The center's operator acts for the biller it chooses.
    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/api-keys?biller=beta")
    assert status == 200 and list(listed(page)) == [beta_key]

    lines = audit(gateway, "--biller", "acme")
    mine = [(a["action"], a["target"]) for a in lines if a["actor"] == "user:acme-admin"]
    assert sorted(m for m in mine if m[0].startswith("key.")) == [
        ("key.create", f"key:{new}"),
        ("key.revoke", f"key:{new}"),
    ]
    assert not any(
        a["action"].startswith("key.")
        for a in lines
        if a["actor"] != "user:acme-admin" and a["actor"].startswith("user:")
    )
    made = next(a for a in lines if a["action"] == "key.create" and a["target"] == f"key:{new}")
    assert made["after"] == {
        "key_id": new,
        "biller_id": "acme",
        "admin": False,
        "name": "基幹システム（本番）",
    }
    revoked = next(a for a in lines if a["action"] == "key.revoke")
    assert revoked["before"]["state"] == "active" and revoked["after"]["state"] == "revoked"
    text = json.dumps(lines)
    assert key.group(1) not in text and hash_key(key.group(1)) not in text
