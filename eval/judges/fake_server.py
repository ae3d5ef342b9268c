"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1, answered by a Python callback.

Used by the tests of the HTTP judge, by the toy world, where an oracle answers the benchmarks'
judge prompts, and by the full world's rehearsal, where :mod:`eval.judges.standin` does::

    with FakeJudgeServer(lambda request: "Rating: [[7]]") as server:
        judge = HTTPJudge("fake", base_url=server.base_url, api_key_env=None)

The callback gets the request body (``model``, ``messages``, ``temperature``, ...) and returns the
reply text, or a dict ``{"text": ..., "top_logprobs": [[(token, logprob), ...], ...]}`` (one list
per generated token). Faults can be queued for the next calls with :meth:`inject`: ``"500"``,
``"429"``, ``"400"`` (a request error, not worth retrying), ``"delay"`` (answer after ``delay_s``
seconds, for client timeouts), ``"malformed"`` (a reply without any verdict) and ``"bad_json"`` (a
200 whose body is not JSON). A callback that raises answers 400 with the exception's message.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

Answer = Callable[[dict], Any]
FAULTS = ("500", "429", "400", "delay", "malformed", "bad_json")
MALFORMED_TEXT = "I am not able to decide."


def _words(text: str) -> int:
    return len(str(text).split())


class FakeJudgeServer:
    """Serve ``POST .../chat/completions`` from a callback; count calls; inject faults."""

    def __init__(self, answer: Answer, *, delay_s: float = 1.0, port: int = 0, host: str = "127.0.0.1"):
        self.answer = answer
        self.host, self.requested_port = host, int(port)   # port 0: any free port
        self.default_delay_s = delay_s
        self.calls = 0
        self.requests: list[dict] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: deque = deque()
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FakeJudgeServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                server._handle(self)

            def log_message(self, *args):  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # a client that timed out and left
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-judge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeJudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---- faults --------------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, *, delay_s: Optional[float] = None) -> None:
        """Make the next ``times`` calls fail as ``kind`` (queued in order, one fault per call)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose from {FAULTS}")
        with self._lock:
            for _ in range(times):
                self._faults.append((kind, self.default_delay_s if delay_s is None else delay_s))

    # ---- serving -------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if not h.path.rstrip("/").endswith("/chat/completions"):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}", "type": "not_found"}})
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"{}")
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            fault = self._faults.popleft() if self._faults else None
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._respond(h, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _respond(self, h: BaseHTTPRequestHandler, body: dict, fault) -> None:
        kind = fault[0] if fault else None
        if kind == "500":
            return self._send(h, 500, {"error": {"message": "injected server error", "type": "server_error"}})
        if kind == "429":
            return self._send(h, 429, {"error": {"message": "injected rate limit", "type": "rate_limit"}},
                              headers={"Retry-After": "0"})
        if kind == "400":
            return self._send(h, 400, {"error": {"message": "injected bad request", "type": "invalid_request_error"}})
        if kind == "bad_json":
            return self._send_raw(h, 200, b"<html>upstream proxy error</html>", "application/json")
        if kind == "delay":
            time.sleep(fault[1])
        try:
            out = {"text": MALFORMED_TEXT} if kind == "malformed" else self.answer(body)
        except Exception as e:  # noqa: BLE001 - a request the callback cannot answer is the client's error
            return self._send(h, 400, {"error": {"message": f"{type(e).__name__}: {e}",
                                                 "type": "invalid_request_error"}})
        if not isinstance(out, dict):
            out = {"text": str(out)}
        self._send(h, 200, self._completion(body, out["text"], out.get("top_logprobs")))

    @staticmethod
    def _completion(body: dict, text: str, top_logprobs) -> dict:
        prompt_tokens = sum(_words(m.get("content", "")) for m in body.get("messages", []))
        choice: dict = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            content = []
            for alternatives in top_logprobs or []:
                alts = [{"token": t, "logprob": float(lp), "bytes": list(t.encode())} for t, lp in alternatives]
                alts = alts[: body.get("top_logprobs") or len(alts)]
                best = max(alts, key=lambda a: a["logprob"]) if alts else {"token": "", "logprob": 0.0, "bytes": []}
                content.append({**best, "top_logprobs": alts})
            choice["logprobs"] = {"content": content}
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"), "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, _words(text)),
                      "total_tokens": prompt_tokens + max(1, _words(text))},
        }

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        FakeJudgeServer._send_raw(h, status, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str,
                  headers: Optional[dict] = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
