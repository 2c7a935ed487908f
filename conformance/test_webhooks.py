"""Webhooks verified by the published Standard Webhooks library (PyPI `standardwebhooks`),
unchanged: an organization endpoint and a Flyflow agent's `webhook` receive a call's events on
a local HTTP receiver, and every delivery must pass `Webhook(secret).verify(body, headers)`.

Started by conformance/run.sh (the server runs with --webhook-allow-private so that the
receiver may listen on loopback).
"""

import http.server
import json
import os
import threading
import time
import uuid

import pytest
import requests
from flyflowclient import Flyflow
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BASE = os.environ["SB_BASE"]
KEY = os.environ["SB_KEY"]
NATIVE = {"Authorization": f"Bearer {KEY}"}


def fresh_number():
    return "+1415" + str(uuid.uuid4().int % 10_000_000).zfill(7)


class Receiver:
    """A real HTTP server on a free loopback port that keeps every request."""

    def __init__(self):
        self.got = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.cond:
                    outer.got.append((self.path, dict(self.headers), body))
                    outer.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.got):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; received {[(p, json.loads(b)['type']) for p, _, b in self.got]}"
                self.cond.wait(left)
            return list(self.got)


@pytest.fixture(scope="module")
def rx():
    r = Receiver()
    yield r
    r.server.shutdown()


def test_deliveries_verify_with_standardwebhooks(rx):
    ff = Flyflow(api_key=KEY, base_url=f"{BASE}/v1")
    agent = ff.upsert_agent(name=f"hooked-{uuid.uuid4().hex[:8]}", system_prompt="x", webhook=f"{rx.base}/agent")
    number = fresh_number()
    r = requests.post(f"{BASE}/v1/phone-numbers", headers=NATIVE, json={"phone_number": number, "agent_id": agent["id"]})
    assert r.status_code == 201, r.text
    r = requests.post(f"{BASE}/v1/webhook-endpoints", headers=NATIVE,
                      json={"url": f"{rx.base}/org", "events": ["call.created", "call.ended"], "description": "py"})
    assert r.status_code == 201, r.text
    endpoint = r.json()
    org_secret = endpoint["secret"]
    assert org_secret.startswith("whsec_")
    r = requests.get(f"{BASE}/v1/agents/{agent['id']}/webhook-secret", headers=NATIVE)
    assert r.status_code == 200, r.text
    agent_secret = r.json()["secret"]

    call = ff.create_call(from_number=number, to_number=fresh_number(), context="webhooks")
    got = rx.wait(lambda g: any(p == "/org" for p, _, _ in g) and any(p == "/agent" for p, _, _ in g))
    for path, headers, body in got:
        secret = org_secret if path == "/org" else agent_secret
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "call.created"
        assert payload["data"]["id"] == call["id"]
        assert set(payload) >= {"type", "timestamp", "data"}
        # The other secret does not verify it; neither does a changed body.
        other = agent_secret if path == "/org" else org_secret
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.replace(b"call.created", b"call.ended!"), headers)

    # webhook-id is the event's id in the log.
    r = requests.get(f"{BASE}/v1/events", headers=NATIVE, params={"call_id": call["id"], "type": "call.created"})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert len(events) == 1
    ids = {h["Webhook-Id"] if "Webhook-Id" in h else h["webhook-id"] for _, h, _ in got}
    assert ids == {events[0]["id"]}

    # After a rotation, new deliveries verify with the new secret only.
    r = requests.post(f"{BASE}/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=NATIVE)
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    before = len(got)
    second = ff.create_call(from_number=number, to_number=fresh_number())
    got = rx.wait(lambda g: any(p == "/org" and json.loads(b)["data"]["id"] == second["id"] for p, _, b in g))
    path, headers, body = next((p, h, b) for p, h, b in got[before:] if p == "/org")
    assert Webhook(new_secret).verify(body, headers)["data"]["id"] == second["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(org_secret).verify(body, headers)
