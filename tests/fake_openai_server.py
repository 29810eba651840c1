"""An OpenAI-compatible HTTP server for offline tests of the captioner.

It speaks just enough of the API for the real ``openai`` client: chat completions, file upload
and download, and batches (create, retrieve, list). Faults are injected deterministically: the
fault of the n-th request for an image depends only on (seed, image key, n), never on timing or
on the order concurrent requests arrive in, so online and batch runs see the same story.

An image is identified by its *key*, a hash of the image data URL it was sent as; its caption is
a deterministic function of that key, so two runs can be compared caption for caption.

Command line (the rehearsal; a fixed port, since ``captions.base_url`` is a setting)::

    OPENAI_API_KEY=dummy python tests/fake_openai_server.py --port 18765 --ready-file F
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

FAULTS = ("429", "500", "timeout", "malformed", "empty", "refusal", "refusal_text")


@dataclass
class FaultPlan:
    """Which faults to inject. ``fault_rate`` applies to the first ``max_faults_per_key``
    attempts of each image, so a non-poisoned image always succeeds within a modest budget;
    ``poison_rate`` is the share of images that are refused forever."""

    seed: int = 0
    fault_rate: float = 0.0
    max_faults_per_key: int = 2
    faults: tuple[str, ...] = FAULTS
    poison_rate: float = 0.0
    retry_after_s: float = 0.2
    timeout_sleep_s: float = 1.0
    delay_s: float = 0.0
    batch_polls: int = 2


def image_key(url: str) -> str:
    """The server's id for an image: a hash of the data URL it arrived as."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def caption_for(key: str) -> str:
    """The deterministic caption of an image."""
    return (
        f"A test photo with code {key}. The background is a plain grey wall "
        f"and the foreground shows object {int(key[:4], 16) % 97}."
    )


class FakeOpenAIServer:
    """Run with ``with FakeOpenAIServer(api_key, plan) as server: ... server.base_url``."""

    def __init__(self, api_key: str, plan: FaultPlan | None = None) -> None:
        self.api_key = api_key
        self.plan = plan or FaultPlan()
        self.lock = threading.RLock()
        self.attempts: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.online_requests = 0
        self.instructions: Counter[str] = Counter()  # text parts of the requests, as received
        self.retry_after_violations: list[tuple[str, float]] = []
        self.retry_after_honoured = 0
        self.blocked_until: dict[str, float] = {}
        self.auth_failures = 0
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batches_created = 0
        self.max_open_batches = 0
        self._ids = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAIServer:
        """Listen on 127.0.0.1:``port`` (0: a free one) in a background thread."""
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self._ids += 1
            return f"{prefix}-{self._ids:05d}"

    def is_poisoned(self, key: str) -> bool:
        """Images refused on every attempt (they must end up in the failures report)."""
        rng = random.Random(f"{self.plan.seed}:{key}:poison")
        return rng.random() < self.plan.poison_rate

    # -- the captioning model ----------------------------------------------------------------

    def decide(self, body: dict[str, Any], online: bool) -> tuple[str, str | None]:
        """Count one request for an image and pick its fault (None = a good answer)."""
        url, texts = "", []
        for message in body.get("messages", []):
            for part in message.get("content", []):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                elif isinstance(part, dict) and part.get("type") == "text":
                    texts.append(part["text"])
        key = image_key(url)
        now = time.monotonic()
        with self.lock:
            self.instructions.update(texts)
            n = self.attempts[key]
            self.attempts[key] += 1
            self.requests[key] += 1
            if online:
                self.online_requests += 1
                blocked = self.blocked_until.pop(key, None)
                if blocked is not None:
                    if now < blocked - 0.01:
                        self.retry_after_violations.append((key, blocked - now))
                    else:
                        self.retry_after_honoured += 1
        if self.is_poisoned(key):
            fault: str | None = "refusal" if n % 2 == 0 else "refusal_text"
        else:
            rng = random.Random(f"{self.plan.seed}:{key}:{n}")
            draw = rng.random()
            fault = None
            if n < self.plan.max_faults_per_key and draw < self.plan.fault_rate:
                fault = rng.choice(self.plan.faults)
        with self.lock:
            self.faults[fault or "ok"] += 1
            if fault == "429" and online:
                self.blocked_until[key] = now + self.plan.retry_after_s
        return key, fault

    def completion(self, key: str, fault: str | None, model: str) -> dict[str, Any]:
        """A chat completion body for a good, empty or refused answer."""
        content: str | None = caption_for(key)
        refusal = None
        if fault == "empty":
            content = ""
        elif fault == "refusal":
            content, refusal = None, "I'm sorry, but I can't help with that."
        elif fault == "refusal_text":
            content = "I'm sorry, I can't help with identifying this image."
        if fault is None:
            with self.lock:
                self.successes[key] += 1
        words = len((content or refusal or "").split())
        return {
            "id": self.new_id("chatcmpl"),
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 250,
                "completion_tokens": words,
                "total_tokens": 250 + words,
            },
        }

    # -- batches -----------------------------------------------------------------------------

    def run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every line of a batch's input file and attach output and error files."""
        data = self.files[batch["input_file_id"]]["data"]
        out, err = [], []
        for raw in data.splitlines():
            request = json.loads(raw)
            key, fault = self.decide(request["body"], online=False)
            line: dict[str, Any] = {
                "id": self.new_id("batch_req"),
                "custom_id": request["custom_id"],
                "error": None,
            }
            if fault == "timeout":
                continue  # the request is lost: no line at all
            if fault in ("429", "500"):
                status = int(fault)
                line["response"] = {
                    "status_code": status,
                    "request_id": "req",
                    "body": {"error": {"message": "try again later", "type": "server_error"}},
                }
                err.append(line)
                continue
            if fault == "malformed":
                body: dict[str, Any] = {"id": "chatcmpl-broken", "object": "chat.completion"}
            else:
                body = self.completion(key, fault, request["body"]["model"])
            line["response"] = {"status_code": 200, "request_id": "req", "body": body}
            out.append(line)
        for name, lines in (("output_file_id", out), ("error_file_id", err)):
            if lines:
                blob = "".join(json.dumps(x) + "\n" for x in lines).encode()
                batch[name] = self.store_file(f"{batch['id']}_{name}.jsonl", blob, "batch_output")
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())
        batch["request_counts"] = {
            "total": len(data.splitlines()),
            "completed": len(out),
            "failed": len(err),
        }

    def store_file(self, filename: str, data: bytes, purpose: str) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "data": data,
        }
        return file_id


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("data", "polls")}


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every small response waits ~40 ms (delayed ACK)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            pass

        # -- plumbing --

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                content_type = "application/json"
                if headers and "content-type" in headers:
                    content_type = headers.pop("content-type")
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(self, status: int, message: str, **headers: str) -> None:
            body = {"error": {"message": message, "type": "error", "code": str(status)}}
            self._send(status, body, dict(headers))

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorised(self) -> bool:
            given = self.headers.get("authorization", "")
            if given == f"Bearer {server.api_key}":
                return True
            with server.lock:
                server.auth_failures += 1
            provided = given.removeprefix("Bearer ")
            body = {
                "error": {
                    # Like the real API, echo the key back: the client must not log it.
                    "message": f"Incorrect API key provided: {provided}.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
            self._send(401, body)
            return False

        # -- routes --

        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            body = self._body()
            if not self._authorised():
                return
            path = urlparse(self.path).path
            if path == "/v1/chat/completions":
                self._chat(json.loads(body))
            elif path == "/v1/files":
                self._upload(body)
            elif path == "/v1/batches":
                self._create_batch(json.loads(body))
            else:
                self._error(404, f"no route {path}")

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            if not self._authorised():
                return
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                record = server.files.get(parts[2])
                if record is None:
                    return self._error(404, "no such file")
                self._send(200, record["data"], {"content-type": "application/octet-stream"})
            elif parts[:2] == ["v1", "batches"] and len(parts) == 3:
                self._retrieve_batch(parts[2])
            elif parts == ["v1", "batches"]:
                self._list_batches(parse_qs(url.query))
            else:
                self._error(404, f"no route {url.path}")

        def _chat(self, body: dict[str, Any]) -> None:
            if server.plan.delay_s:
                time.sleep(server.plan.delay_s)
            key, fault = server.decide(body, online=True)
            if fault == "429":
                retry = f"{server.plan.retry_after_s:.3f}"
                return self._error(429, "Rate limit reached", **{"retry-after": retry})
            if fault == "500":
                return self._error(500, "The server had an error")
            if fault == "timeout":
                time.sleep(server.plan.timeout_sleep_s)
                return self._error(504, "gateway timeout")
            if fault == "malformed":
                return self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')
            self._send(200, server.completion(key, fault, body.get("model", "")))

        def _upload(self, body: bytes) -> None:
            header = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
            fields: dict[str, Any] = {}
            filename = "upload.jsonl"
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    filename = part.get_filename()
                fields[name] = part.get_payload(decode=True)
            data, purpose = fields.get("file"), (fields.get("purpose") or b"").decode()
            if data is None or purpose != "batch":
                return self._error(400, "need a file with purpose=batch")
            file_id = server.store_file(filename, data, purpose)
            self._send(200, _public(server.files[file_id]))

        def _create_batch(self, body: dict[str, Any]) -> None:
            if body.get("input_file_id") not in server.files:
                return self._error(400, "unknown input file")
            batch = {
                "id": server.new_id("batch"),
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "validating",
                "created_at": int(time.time()),
                "metadata": body.get("metadata"),
                "output_file_id": None,
                "error_file_id": None,
                "polls": 0,
            }
            with server.lock:
                server.batches[batch["id"]] = batch
                server.batches_created += 1
                running = sum(b["status"] != "completed" for b in server.batches.values())
                server.max_open_batches = max(server.max_open_batches, running)
            self._send(200, _public(batch))

        def _retrieve_batch(self, batch_id: str) -> None:
            batch = server.batches.get(batch_id)
            if batch is None:
                return self._error(404, "no such batch")
            with server.lock:
                batch["polls"] += 1
                if batch["status"] != "completed":
                    if batch["polls"] >= server.plan.batch_polls:
                        server.run_batch(batch)
                    else:
                        batch["status"] = "in_progress"
            self._send(200, _public(batch))

        def _list_batches(self, query: dict[str, list[str]]) -> None:
            newest_first = sorted(server.batches.values(), key=lambda b: b["id"], reverse=True)
            data = [_public(b) for b in newest_first]
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": False,
                },
            )

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve without faults until killed; the accepted key is ``$OPENAI_API_KEY``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="127.0.0.1:PORT (0: any free port)")
    p.add_argument("--ready-file", help="write the base URL here once serving")
    p.add_argument("--batch-polls", type=int, default=1, help="polls before a batch completes")
    args = p.parse_args(argv)
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        p.error("set OPENAI_API_KEY (any dummy value: the key the server accepts)")
    server = FakeOpenAIServer(key, FaultPlan(batch_polls=args.batch_polls)).start(args.port)
    print(f"serving {server.base_url}", file=sys.stderr, flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(server.base_url + "\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
