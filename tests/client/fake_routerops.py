"""A real HTTP server on 127.0.0.1 standing in for RouterOps, for the client's retry and batching tests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int
    headers: dict = field(default_factory=dict)
    body: object = None  # dict/list → JSON; str → text/html
    delay: float = 0.0  # seconds to stall before answering (to provoke client timeouts)


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict


class FakeRouterOps:
    """Answers scripted replies in order, then 200 with a summary accepting every item.

    `reject_index` makes the default reply a 207 rejecting the item at that index of each batch.
    """

    def __init__(self):
        self.script: list[Reply] = []
        self.requests: list[Recorded] = []
        self.reject_index: int | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw)
                with fake._lock:
                    fake.requests.append(Recorded(self.path, dict(self.headers), body))
                    reply = fake.script.pop(0) if fake.script else None
                if reply is None:
                    reply = fake.default_reply(body)
                time.sleep(reply.delay)
                if isinstance(reply.body, str):
                    payload, content_type = reply.body.encode(), "text/html"
                else:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def default_reply(self, body: dict) -> Reply:
        items = next(iter(body.values()))
        if self.reject_index is not None and self.reject_index < len(items):
            bad = items[self.reject_index]
            errors = [{"index": self.reject_index, "decision_id": bad["decision_id"], "errors": {"x": ["bad"]}}]
            return Reply(207, body={"accepted": len(items) - 1, "duplicates": 0, "rejected": 1, "errors": errors})
        return Reply(200, body={"accepted": len(items), "duplicates": 0, "rejected": 0, "errors": []})
