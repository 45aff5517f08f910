#!/usr/bin/env python3
"""A webhook receiver for Millrace's tests.

Every POST is verified with the `standardwebhooks` package from PyPI, an implementation of
the Standard Webhooks scheme independent of Millrace's, and recorded. The test drives it:

  POST /_control  {"secret": "whsec_...", "fail_first": N}   sets the secret to verify with,
                  and answers 500 to the next N deliveries whatever they carry
  GET  /_received the recorded deliveries, oldest first

A delivery that verifies gets 204 (unless it is to fail), one that does not gets 401. On start
it prints one JSON line, {"port": N}, once it listens on 127.0.0.1.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

LOCK = threading.Lock()
STATE = {"secret": None, "fail_next": 0, "received": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def _answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self._body()
        if self.path == "/_control":
            control = json.loads(body)
            with LOCK:
                if "secret" in control:
                    STATE["secret"] = control["secret"]
                if "fail_first" in control:
                    STATE["fail_next"] = int(control["fail_first"])
            self._answer(204)
            return

        with LOCK:
            secret = STATE["secret"]
            failing = STATE["fail_next"] > 0
            if failing:
                STATE["fail_next"] -= 1

        payload, error = None, None
        try:
            if secret is None:
                raise ValueError("no secret set yet")
            payload = Webhook(secret).verify(body, dict(self.headers.items()))
        except Exception as err:  # recorded for the test to assert on
            error = f"{type(err).__name__}: {err}"
        verified = error is None
        status = 500 if failing else (204 if verified else 401)

        with LOCK:
            STATE["received"].append(
                {
                    "path": self.path,
                    "webhook_id": self.headers.get("webhook-id"),
                    "webhook_timestamp": self.headers.get("webhook-timestamp"),
                    "content_type": self.headers.get("content-type"),
                    "verified": verified,
                    "error": error,
                    "answered": status,
                    "payload": payload,
                }
            )
        self._answer(status)

    def do_GET(self):
        if self.path != "/_received":
            self._answer(404)
            return
        with LOCK:
            body = json.dumps(STATE["received"]).encode()
        self._answer(200, body)

    def log_message(self, format, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
