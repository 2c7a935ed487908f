"""The published Python clients, unchanged, against a running Switchboard.

Started by conformance/run.sh, which sets SB_BASE, SB_KEY, SB_ORG, SB_DATA_DIR, SB_SEED (the
conformance_seed example binary) and SB_MP3 (a generated MP3).
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest
import requests
from flyflowclient import Flyflow
from omnidimension import Client
from omnidimension.client import APIError

BASE = os.environ["SB_BASE"]
KEY = os.environ["SB_KEY"]
ORG = os.environ["SB_ORG"]
NATIVE = {"Authorization": f"Bearer {KEY}"}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fresh_number():
    """A valid, unused E.164 number."""
    return "+1415" + str(uuid.uuid4().int % 10_000_000).zfill(7)


@pytest.fixture(scope="module")
def ff():
    return Flyflow(api_key=KEY, base_url=f"{BASE}/v1")


@pytest.fixture(scope="module")
def omni():
    return Client(api_key=KEY, base_url=f"{BASE}/api/v1")


@pytest.fixture(scope="module")
def bound(ff):
    """A Flyflow agent and one of our numbers bound to it (native endpoint)."""
    agent = ff.upsert_agent(name=unique("bound"), system_prompt="You are a test agent.", initial_message="Hi")
    number = fresh_number()
    r = requests.post(f"{BASE}/v1/phone-numbers", headers=NATIVE, json={"phone_number": number, "agent_id": agent["id"]})
    assert r.status_code == 201, r.text
    return agent, number, r.json()


def complete_with_recording(call_id):
    """Plays the engine: completes the call, stores a transcript and the MP3 recording."""
    out = subprocess.run(
        [os.environ["SB_SEED"], os.environ["SB_DATA_DIR"], call_id, os.environ["SB_MP3"]],
        check=True, capture_output=True, text=True,
    )
    assert json.loads(out.stdout)["status"] == "completed"


# ----- Flyflow -----

def test_flyflow_agents(ff):
    name = unique("agent")
    a = ff.upsert_agent(name=name, system_prompt="v1", voice_id="voice-1", llm_model="gpt-4o",
                        webhook="https://example.com/hook", tools=[{"name": "lookup"}], filler_words=True,
                        language="en-US")
    assert uuid.UUID(a["id"]) and a["name"] == name
    assert a["system_prompt"] == "v1" and a["voice"] == "voice-1" and a["webhook_url"] == "https://example.com/hook"
    again = ff.upsert_agent(name=name, system_prompt="v2")
    assert again["id"] == a["id"], "upsert by name updates the same agent"
    got = ff.get_agent(a["id"])
    assert got["system_prompt"] == "v2" and got["voice"] == "voice-1"
    # list_agents paged to the end sees it once.
    seen, cursor = [], None
    while True:
        page = ff.list_agents(cursor=cursor, limit=2)
        seen += [x["id"] for x in page["agents"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen.count(a["id"]) == 1 and len(seen) == len(set(seen))
    assert ff.delete_agent(a["id"]) is None
    with pytest.raises(requests.HTTPError) as e:
        ff.get_agent(a["id"])
    assert e.value.response.status_code == 404


def test_flyflow_calls(ff, bound):
    agent, number, _ = bound
    client_number = fresh_number()
    made = []
    for i in range(7):
        to = client_number if i % 2 == 0 else fresh_number()
        c = ff.create_call(from_number=number, to_number=to, context=f"ctx {i}", user_speaks_first=(i == 0))
        assert c["status"] == "dialing" and c["client_number"] == to and c["agent_id"] == agent["id"]
        made.append(c["id"])
    c = ff.get_call(made[0])
    assert c["id"] == made[0] and c["context"] == "ctx 0" and c["user_speaks_first"] is True
    updated = ff.set_call_context(made[0], "new context")
    assert updated["context"] == "new context"
    assert ff.get_call(made[0])["context"] == "new context"
    # list_calls paged with the returned cursor until null: every call exactly once.
    seen, cursor = [], None
    while True:
        page = ff.list_calls(cursor=cursor, limit=3, agent_id=agent["id"])
        assert page["num_items"] == len(page["calls"]) <= 3
        seen += [x["id"] for x in page["calls"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(set(seen)), "no call twice"
    assert set(made) <= set(seen)
    page = ff.list_calls(limit=100, client_number=client_number)
    assert sorted(x["id"] for x in page["calls"]) == sorted(made[0::2])
    for x in page["calls"]:
        assert set(x) >= {"id", "agent_id", "client_number", "context", "status", "created_at"}
    # delete_call
    gone = ff.delete_call(made[-1])
    assert gone["deleted"] is True
    with pytest.raises(requests.HTTPError) as e:
        ff.get_call(made[-1])
    assert e.value.response.status_code == 404


def test_flyflow_create_call_errors(ff, bound):
    _, number, _ = bound
    for frm, to in [(fresh_number(), fresh_number()), (number, "12345"), ("nope", fresh_number())]:
        with pytest.raises(requests.HTTPError) as e:
            ff.create_call(from_number=frm, to_number=to)
        assert e.value.response.status_code in (400, 404, 422)
        assert "message" in e.value.response.json()


def is_mp3(data):
    if data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        data = data[10 + size:]
    return len(data) > 4 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0


def test_flyflow_recording(ff, bound, tmp_path):
    _, number, _ = bound
    c = ff.create_call(from_number=number, to_number=fresh_number(), context="record me")
    with pytest.raises(requests.HTTPError) as e:
        ff.get_call_recording(c["id"], str(tmp_path / "none.mp3"))
    assert e.value.response.status_code == 404
    complete_with_recording(c["id"])
    out = tmp_path / "recording.mp3"
    assert ff.get_call_recording(c["id"], str(out)) == str(out)
    data = out.read_bytes()
    assert data == open(os.environ["SB_MP3"], "rb").read()
    assert is_mp3(data), "MPEG audio frame sync"
    if shutil.which("ffprobe"):
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels", "-of", "json", str(out)],
            check=True, capture_output=True, text=True,
        )
        stream = json.loads(probe.stdout)["streams"][0]
        assert stream["codec_name"] == "mp3" and stream["channels"] == 1
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], check=True)
    call = ff.get_call(c["id"])
    assert call["status"] == "completed" and call["duration"] == 42
    assert call["recording_url"].endswith(f"/v1/call/recording/{c['id']}.mp3")


# ----- OmniDimension -----

def test_omnidim_agents(omni):
    name = unique("omni")
    created = omni.agent.create(
        name,
        [{"title": "Role", "body": "You book tables.", "is_enabled": True},
         {"title": "Off", "body": "ignored", "is_enabled": False}],
        welcome_message="Hello from Omni",
        call_type="Outgoing",
        voice={"provider": "eleven_labs", "voice_id": "v-1"},
    )
    assert created["status"] == 201
    agent = created["json"]
    assert isinstance(agent["id"], int) and agent["name"] == name
    got = omni.agent.get(agent["id"])["json"]
    assert got["welcome_message"] == "Hello from Omni" and got["system_prompt"] == "## Role\nYou book tables."
    assert got["context_breakdown"][0]["title"] == "Role" and got["call_type"] == "Outgoing"
    listing = omni.agent.list(page=1, page_size=30)["json"]
    assert any(b["id"] == agent["id"] for b in listing["bots"])
    total = listing["total_records"]
    ids = []
    for p in range(1, total + 1):
        page = omni.agent.list(page=p, page_size=1)["json"]
        assert page["total_pages"] == total and len(page["bots"]) == 1
        ids.append(page["bots"][0]["id"])
    assert len(ids) == len(set(ids)) == total
    with pytest.raises(APIError) as e:
        omni.agent.get(999_999_999)
    assert e.value.status_code == 404 and "not found" in e.value.message


def test_omnidim_calls(omni, bound, ff):
    agent, number, num = bound
    agent_int = agent["number"]
    numbers = omni.phone_number.list(page=1, page_size=30)["json"]
    mine = [n for n in numbers["phone_numbers"] if n["phone_number"] == number]
    assert len(mine) == 1 and mine[0]["id"] == num["number_id"] and mine[0]["agent_id"] == agent_int
    to = fresh_number()
    r = omni.call.dispatch_call(agent_int, to, from_number_id=mine[0]["id"], call_context={"customer": "Ada"})
    body = r["json"]
    assert r["status"] == 200 and body["success"] is True
    call_id = body["call_log_id"]
    # Default arguments: call_context={} and no caller id (the agent's bound number is used).
    r2 = omni.call.dispatch_call(agent_int, fresh_number())["json"]
    assert r2["call_log"]["from_number"] == number and r2["call_log"]["call_context"] is None
    log = omni.call.get_call_log(call_id)["json"]
    assert log["id"] == call_id and log["call_status"] == "dialing" and log["to_number"] == to
    assert log["call_context"] == {"customer": "Ada"} and log["agent_id"] == agent_int
    assert log["transcript"] is None and log["call_duration"] is None
    logs = omni.call.get_call_logs(page=1, page_size=10, agent_id=agent_int)["json"]
    assert any(x["id"] == call_id for x in logs["call_log_data"])
    assert logs["pagesize"] == 10 and logs["pageno"] == 1
    everything, p = [], 1
    while True:
        page = omni.call.get_call_logs(page=p, page_size=2, agent_id=agent_int)["json"]
        assert page["total_pages"] == (logs["total_records"] + 1) // 2
        everything += [x["id"] for x in page["call_log_data"]]
        if p >= page["total_pages"]:
            break
        p += 1
    assert len(everything) == len(set(everything)) == logs["total_records"]
    dialing = omni.call.get_call_logs(call_status="dialing")["json"]
    assert all(x["call_status"] == "dialing" for x in dialing["call_log_data"])
    # Once the call has ended: transcript, duration and status in the log.
    complete_with_recording(call_id)
    log = omni.call.get_call_log(call_id)["json"]
    assert log["call_status"] == "completed" and log["call_duration"] == 42
    assert "Hello, this is Switchboard." in log["transcript"]
    assert log["recording_url"].endswith(".mp3")
    done = omni.call.get_call_logs(call_status="completed", agent_id=agent_int)["json"]
    assert call_id in [x["id"] for x in done["call_log_data"]]
    # The same call through Flyflow and AgentVoice.
    assert ff.get_call(call_id)["status"] == "completed"
    av = requests.get(f"{BASE}/api/calls/{call_id}", params={"fields": "full"},
                      headers={"x-api-key": KEY, "x-organization-id": ORG})
    assert av.status_code == 200 and av.json()["call_duration"] == 42 and av.json()["phone_number"] == to


def test_omnidim_errors(omni):
    with pytest.raises(APIError) as e:
        omni.call.dispatch_call(999_999_999, "+15551234567")
    assert e.value.status_code == 404 and "999999999" in e.value.message
    with pytest.raises(APIError) as e:
        omni.call.dispatch_call(1, "5551234567")
    assert e.value.status_code in (400, 404)
    with pytest.raises(APIError) as e:
        omni.call.get_call_logs(page=0)
    assert e.value.status_code == 400 and "pageno" in e.value.message
    with pytest.raises(APIError) as e:
        omni.call.get_call_log("does-not-exist")
    assert e.value.status_code == 404
    bad = Client(api_key="sk_definitely_wrong", base_url=f"{BASE}/api/v1")
    with pytest.raises(APIError) as e:
        bad.agent.list()
    assert e.value.status_code == 401 and e.value.message == "Invalid API key"


# ----- AgentVoice (004's requests form) -----

def test_agentvoice_requests_form(ff, bound):
    _, number, _ = bound
    h = {"x-api-key": KEY, "x-organization-id": ORG}
    r = requests.get(f"{BASE}/api/calls", params={"limit": 10, "order": "desc"}, headers=h)
    assert r.status_code == 200
    data = r.json()
    assert set(data) == {"data", "pagination"} and data["pagination"]["limit"] == 10
    to = fresh_number()
    c = ff.create_call(from_number=number, to_number=to)
    recent = requests.get(f"{BASE}/api/calls", params={"phone_number": to, "most_recent": "true"}, headers=h).json()
    assert recent["id"] == c["id"]
    r = requests.get(f"{BASE}/api/calls", params={"order_by": "duration"}, headers=h)
    assert r.status_code == 400 and "Invalid order_by parameter" in r.json()["message"]
    r = requests.get(f"{BASE}/api/calls/abc-123", params={"include": "transcript,metrics,diagnostics,actions"}, headers=h)
    assert r.status_code == 404 and r.json()["error"] == "Call not found"
    r = requests.get(f"{BASE}/api/calls", headers={"x-api-key": "wrong", "x-organization-id": ORG})
    assert r.status_code == 401 and r.json()["error"] == "Authentication failed"
