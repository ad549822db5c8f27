"""A FHIR server that misbehaves on purpose, on 127.0.0.1: a real socket, a real HTTP stack.

It answers the patient and the conditions search like an honest server, so a hook call can
still be answered, and every other search with a body that never fits: ``/huge/`` sends 100 MB
of JSON with no Content-Length, ``/endless/`` streams JSON until the reader hangs up. Under
``/honest/`` every search is answered with an empty searchset; under ``/gzip/`` with one
compressed although the client asked for no compression.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

HUGE_BYTES: Final = 100 * 1000 * 1000
_ENTRY: Final = b'{"resource":{"resourceType":"Observation","id":"x","status":"final"}},'
_CHUNK: Final = _ENTRY * (1024 * 1024 // len(_ENTRY))  # about 1 MiB, sent again and again
_OPENING: Final = b'{"resourceType":"Bundle","type":"searchset","entry":['


def _honest(path: str) -> bytes | None:
    """What an honest server answers for the two keys a hook call requires, else None."""
    if "/Patient/" in path:
        patient_id = path.rsplit("/", 1)[-1]
        return json.dumps({"resourceType": "Patient", "id": patient_id}).encode()
    if "/Condition" in path or path.startswith("/honest/"):
        return json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode()
    return None


@dataclass
class HostileFhirServer:
    url: str  # http://127.0.0.1:PORT
    paths: list[str] = field(default_factory=list)  # every request's path, in order


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no length needed
    server: _Server

    def do_GET(self) -> None:
        self.server.record.paths.append(self.path)
        honest = _honest(self.path.partition("?")[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        if honest is None and self.path.startswith("/gzip/"):
            packed = gzip.compress(_OPENING + _CHUNK[:-1] + b"]}")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(packed)))
            self.end_headers()
            self.wfile.write(packed)
            return
        if honest is not None:
            self.send_header("Content-Length", str(len(honest)))
            self.end_headers()
            self.wfile.write(honest)
            return
        self.end_headers()
        endless = self.path.startswith("/endless/")
        try:
            self.wfile.write(_OPENING)
            sent = len(_OPENING)
            while endless or sent < HUGE_BYTES:
                self.wfile.write(_CHUNK)
                sent += len(_CHUNK)
        except OSError:
            return  # the reader hung up: what a capped client does

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        return  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops some of a call's eight concurrent connection attempts,
    # which the client then retries a second later.
    request_queue_size = 64
    record: HostileFhirServer


@contextmanager
def hostile_fhir_server() -> Iterator[HostileFhirServer]:
    """The running server (its base URL and the paths asked), for the life of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.record = HostileFhirServer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.record
    finally:
        server.shutdown()
        server.server_close()
