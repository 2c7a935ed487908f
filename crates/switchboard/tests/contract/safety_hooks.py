"""schemathesis hooks of crates/switchboard/tests/contract.rs: keep the server under test
from reaching anything but this machine's loopback.

Generated data may name any host. The server acts on some of it: a SIP trunk with
`register: true` and credentials makes the engine REGISTER at its host (over TCP from an
unbound socket, so "1.1" = 1.0.0.1 would leave the machine), and a webhook URL receives the
events of the calls the run creates. Before each request these are made harmless without
changing whether the request is valid: a trunk's `register: true` becomes `false` (also
valid), and a URL whose host is an IP address or a bare number (never generated as valid:
the document asks for a host name, and the machine has no DNS) is pointed at loopback's
discard port, which is just as invalid in the document's eyes.
"""

import re
from urllib.parse import urlsplit, urlunsplit

import schemathesis

# Letters first in every label: what the document's URL pattern allows.
_NAMED_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*$")
_SAFE_NETLOC = "127.0.0.1:9"


def _safe_url(value):
    if not isinstance(value, str):
        return value
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
    except ValueError:
        return value
    if parts.scheme.lower() not in ("http", "https") or _NAMED_HOST.match(host):
        return value
    return urlunsplit((parts.scheme, _SAFE_NETLOC, parts.path, parts.query, parts.fragment))


def _defuse(body, path):
    if not isinstance(body, dict):
        return
    if "sip-trunks" in path and body.get("register") is True:
        body["register"] = False
    for key in ("url", "webhook_url", "webhook"):
        if key in body:
            body[key] = _safe_url(body[key])
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict) and "url" in tool:
                tool["url"] = _safe_url(tool["url"])


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _defuse(case.body, case.operation.path)
