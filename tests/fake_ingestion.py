"""A loopback stand-in for the Application Insights ingestion endpoint: records every telemetry item.

The Azure Monitor exporter POSTs JSON (gzip or plain, one array or one item per line) to
`<IngestionEndpoint>/v2.1/track` and expects `itemsReceived/itemsAccepted` back.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeIngestion:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                text = body.decode("utf-8")
                try:
                    data = json.loads(text)
                    batch = data if isinstance(data, list) else [data]
                except ValueError:
                    batch = [json.loads(line) for line in text.splitlines() if line.strip()]
                with owner._lock:
                    owner.items.extend(batch)
                    owner.raw.append(text)
                reply = json.dumps({"itemsReceived": len(batch), "itemsAccepted": len(batch), "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:  # also the target of the probe's outbound httpx call
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> FakeIngestion:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Items of one kind: Message (traces), Exception, RemoteDependency, Metric (customMetrics)."""
        return [i for i in self.items if i.get("name", "").endswith("." + kind)]

    def metric(self, name: str) -> list[dict[str, Any]]:
        found = []
        for item in self.of_type("Metric"):
            data = item["data"]["baseData"]
            for point in data.get("metrics", []):
                if point["name"] == name:
                    found.append({"value": point["value"], "properties": data.get("properties", {})})
        return found
