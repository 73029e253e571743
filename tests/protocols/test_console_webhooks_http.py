"""The console's webhook screens over HTTP, through the real service (in this process) and a
real receiver on 127.0.0.1: a biller_admin registers endpoints (the API's own URL rules, the
signing secret shown once), reads the delivery log (state, attempts, last status code, next
attempt), redelivers one event, disables and enables an endpoint; who may (403 for a
biller_staff, 404 for another biller's endpoint), CSRF, and the audit lines. In a real
browser: tests/test_console_admin_e2e.py."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from tests.conftest import Biller, Running, config_text
from tests.protocols.test_console_http import Client, audit, csrf_of, location, logged_in
from tests.webhooks.test_webhooks import (
    Receiver,
    new_bills,
    reactor,
    receiver,
    wait_for,
    webhooks_toml,
)

__all__ = ["receiver"]  # the fixture


@pytest.fixture
def gateway_config(migrated_url: str) -> str:
    """Deliveries at once; a failed one tried again only much later (its next attempt stays
    on the page while the test reads it)."""
    return config_text(migrated_url, webhooks=webhooks_toml(backoff_base=3600, backoff_cap=3600))


async def pause() -> None:
    await deferLater(reactor(), 0.1)


def form_id_of(page: str) -> str:
    found = re.search(r'name="form_id" value="([^"]+)"', page)
    assert found, "no form_id in the page"
    return found.group(1)


async def create(client: Client, url: str, **more: str) -> tuple[int, str]:
    _, page, _ = await client.get("/console/webhooks" + more.pop("query", ""))
    fields = {"csrf_token": csrf_of(page), "form_id": form_id_of(page), "url": url, **more}
    status, body, _ = await client.post("/console/webhooks", fields)
    return status, body


async def endpoints_of(gateway: Running, who: Biller) -> list[dict[str, Any]]:
    status, listed, _ = await gateway.request("GET", "/v1/webhook-endpoints", who)
    assert status == 200, listed
    return list(listed["data"])


def rows(page: str) -> list[dict[str, str]]:
    """The delivery log as the page shows it: event, round, state, attempts, last answer."""
    found = []
    for m in re.finditer(
        r'<tr class="delivery" id="delivery-(evt_[0-9a-f]+)-(\d+)">(.*?)</tr>', page, re.S
    ):
        cells = m.group(3)
        state = re.search(r'class="status status-delivery-(\w+) delivery-state"', cells)
        attempts = re.search(r'class="num attempts">(\d+)<', cells)
        last = re.search(r'class="last-status">([^<]*)', cells)
        assert state and attempts and last, cells
        found.append(
            {
                "event": m.group(1),
                "round": m.group(2),
                "state": state.group(1),
                "attempts": attempts.group(1),
                "last": html.unescape(last.group(1)),
            }
        )
    return found


@pytest_twisted.ensureDeferred
async def test_a_biller_admin_manages_its_webhooks(gateway: Running, receiver: Receiver) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    boss = await logged_in(gateway, "acme-admin", "biller_admin", "acme")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    rival = await logged_in(gateway, "beta-admin", "biller_admin", "beta")

    # A biller_staff user has no such screen: 403, and nothing made.
    status, page, _ = await clerk.get("/console/webhooks")
    assert status == 403 and "権限がありません" in page
    csrf = csrf_of((await clerk.get("/console/bills"))[1])
    fields = {"csrf_token": csrf, "url": receiver.base + "/x", "event_all": "1"}
    assert (await clerk.post("/console/webhooks", fields))[0] == 403
    _, home, _ = await clerk.get("/console/")
    assert "/console/webhooks" not in home  # not in its menu either

    status, page, _ = await boss.get("/console/webhooks")
    assert status == 200 and 'id="empty"' in page and 'id="new-endpoint"' in page
    _, home, _ = await boss.get("/console/")
    assert all(p in home for p in ("/console/webhooks", "/console/api-keys", "/console/users"))

    # The API's own rules: a private address, plain http to another host, no event type.
    status, page = await create(boss, "https://10.1.2.3/hook", event_all="1")
    assert status == 422 and "URL：10.1.2.3 is not a public address" in html.unescape(page)
    status, page = await create(boss, "http://hooks.example.com/in", event_all="1")
    assert status == 422 and "must be https://" in page
    status, page = await create(boss, "https://hooks.example.com/in")
    assert status == 422 and "イベント：must name at least one event type" in page
    assert 'value="https://hooks.example.com/in"' in page  # the form keeps what was sent
    # Without the CSRF token: refused, nothing made.
    _, page, _ = await boss.get("/console/webhooks")
    fields = {"form_id": form_id_of(page), "url": receiver.base + "/up", "event_all": "1"}
    assert (await boss.post("/console/webhooks", fields))[0] == 403
    assert await endpoints_of(gateway, acme) == []

    # Two endpoints: one answers 200, the other 500.
    receiver.behaviour["/down"] = lambda arrival, nth: 500
    status, page = await create(boss, receiver.base + "/up", event_all="1")
    assert status == 200 and "エンドポイントを登録しました" in page
    secret = re.search(r'id="secret" class="mono" type="text" readonly value="(whsec_[^"]+)"', page)
    assert secret, page
    receiver.secrets["/up"] = secret.group(1)
    status, page = await create(boss, receiver.base + "/down", **{"event_bill.created": "1"})
    assert status == 200
    receiver.secrets["/down"] = re.findall(r'value="(whsec_[^"]+)"', page)[0]
    made = await endpoints_of(gateway, acme)
    assert [(e["url"], e["events"], e["status"]) for e in made] == [
        (receiver.base + "/up", ["*"], "enabled"),
        (receiver.base + "/down", ["bill.created"], "enabled"),
    ]
    up, down = made[0]["id"], made[1]["id"]
    _, page, _ = await boss.get("/console/webhooks")
    assert secret.group(1) not in page  # shown once
    assert f'href="/console/webhooks/acme/{up}"' in page and "請求の登録" in page

    # A bill: its event reaches both; /up says 200, /down 500 (to be tried again).
    (event,) = await new_bills(gateway, acme, 1)
    await wait_for("both arrivals", lambda: receiver.at("/up") and receiver.at("/down"))
    assert receiver.at("/up")[0].verified == "ok"

    async def log(endpoint_id: str, query: str = "") -> list[dict[str, str]]:
        status, page, _ = await boss.get(f"/console/webhooks/acme/{endpoint_id}{query}")
        assert status == 200, page
        return rows(page)

    async def settled(endpoint_id: str, state: str) -> bool:
        return any(r["state"] == state for r in await log(endpoint_id))

    for _ in range(100):
        if await settled(up, "succeeded") and await settled(down, "pending"):
            break
        await pause()
    assert await log(up) == [
        {"event": event, "round": "0", "state": "succeeded", "attempts": "1", "last": "HTTP 200"}
    ]
    (failing,) = await log(down)
    assert (failing["event"], failing["state"], failing["last"]) == (event, "pending", "HTTP 500")
    _, page, _ = await boss.get(f"/console/webhooks/acme/{down}")
    assert "配信待ち" in page and "次の試行" in page

    # Another biller's admin: the endpoint is not found, by any URL; nothing redelivered.
    for path in (f"/console/webhooks/acme/{up}", f"/console/webhooks/beta/{up}"):
        assert (await rival.get(path))[0] == 404, path
    csrf = csrf_of((await rival.get("/console/webhooks"))[1])
    fields = {"csrf_token": csrf, "form_id": "f" * 24, "event_id": event}
    for path in (
        f"/console/webhooks/acme/{up}/redeliver",
        f"/console/webhooks/beta/{up}/redeliver",
    ):
        assert (await rival.post(path, fields))[0] == 404, path
    assert (await rival.post(f"/console/webhooks/acme/{up}/disable", {"csrf_token": csrf}))[
        0
    ] == 404
    assert (await clerk.get(f"/console/webhooks/acme/{up}"))[0] == 403

    # Redelivery of the event to /up: a new round, delivered.
    _, page, _ = await boss.get(f"/console/webhooks/acme/{up}")
    fields = {"csrf_token": csrf_of(page), "form_id": form_id_of(page), "event_id": event}
    path = f"/console/webhooks/acme/{up}/redeliver"
    assert (await boss.post(path, {k: v for k, v in fields.items() if k != "csrf_token"}))[0] == 403
    status, _, headers = await boss.post(path, fields)
    assert status == 303
    assert location(headers) == f"/console/webhooks/acme/{up}?event={event}&done=redelivered"
    await wait_for("the redelivery", lambda: len(receiver.at("/up")) == 2)
    assert receiver.at("/up")[1].event_id == event and receiver.at("/up")[1].verified == "ok"
    for _ in range(100):
        if (await log(up, f"?event={event}"))[0]["state"] == "succeeded":
            break
        await pause()
    assert [(r["round"], r["state"], r["last"]) for r in await log(up, f"?event={event}")] == [
        ("1", "succeeded", "HTTP 200"),
        ("0", "succeeded", "HTTP 200"),
    ]
    status, _, _ = await boss.post(path, fields)  # the same form again: nothing more
    assert status == 303 and len(await log(up)) == 2

    # Disabled: its pending delivery is cancelled, no redelivery; enabled again.
    _, page, _ = await boss.get(f"/console/webhooks/acme/{down}")
    csrf = csrf_of(page)
    status, _, headers = await boss.post(
        f"/console/webhooks/acme/{down}/disable", {"csrf_token": csrf}
    )
    assert status == 303 and location(headers).endswith("?done=disabled")
    _, page, _ = await boss.get(location(headers))
    assert "このエンドポイントを無効にしました" in page and "status-endpoint-disabled" in page
    assert [r["state"] for r in rows(page)] == ["cancelled"] and "redeliver-form" not in page
    fields = {"csrf_token": csrf, "form_id": "g" * 24, "event_id": event}
    status, page, _ = await boss.post(f"/console/webhooks/acme/{down}/redeliver", fields)
    assert status == 409 and "無効なエンドポイントには再送できません" in page
    status, _, headers = await boss.post(
        f"/console/webhooks/acme/{down}/enable", {"csrf_token": csrf}
    )
    assert status == 303 and location(headers).endswith("?done=enabled")
    assert [e["status"] for e in await endpoints_of(gateway, acme)] == ["enabled", "enabled"]
    assert await endpoints_of(gateway, beta) == []

    # The center's operator sees acme's endpoints when it chooses acme.
    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/webhooks")
    assert status == 200 and 'id="biller"' in page and "new-endpoint" not in page
    status, page, _ = await ops.get("/console/webhooks?biller=acme")
    assert status == 200 and page.count('class="endpoint-link') == 2
    assert (await ops.get(f"/console/webhooks/acme/{up}"))[0] == 200
    assert (await ops.get("/console/webhooks?biller=nobody"))[0] == 404

    # Every change in the audit log, with the user; never a secret.
    lines = audit(gateway, "--biller", "acme")
    mine = [(a["action"], a["target"]) for a in lines if a["actor"] == "user:acme-admin"]
    assert set(mine) >= {
        ("webhook_endpoint.create", f"webhook_endpoint:{up}"),
        ("webhook_endpoint.create", f"webhook_endpoint:{down}"),
        ("webhook_endpoint.disable", f"webhook_endpoint:{down}"),
        ("webhook_endpoint.enable", f"webhook_endpoint:{down}"),
        ("event.redeliver", f"event:{event}"),
    }
    changes = [a for a in lines if a["action"].startswith(("webhook_endpoint.", "event."))]
    assert {a["actor"] for a in changes} == {"user:acme-admin"}  # nothing by the refused ones
    redelivered = next(a for a in lines if a["action"] == "event.redeliver")
    assert redelivered["after"] == {
        "type": "bill.created",
        "deliveries": [{"endpoint_id": up, "redelivery": 1}],
    }
    disabled = next(a for a in lines if a["action"] == "webhook_endpoint.disable")
    assert (disabled["before"]["status"], disabled["after"]["status"]) == ("enabled", "disabled")
    text = json.dumps(lines)
    assert "whsec_" not in text and secret.group(1) not in text
