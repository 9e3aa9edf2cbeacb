#!/usr/bin/python3
"""A stand-in for the Baileys bridge's POST /send in tests (the real bridge,
tools/baileys-bridge, has tests of its own): checks X-BAILEYS-SIGNATURE as
the bridge does, records every request, answers as told.  Standard library
only.

    baileys_bridge.py --secret S [--port N]    prints "PORT <n>" when listening

Control (JSON bodies):
    POST /__mode      {"mode": "ok" | "503" | "garbage" | "longid"}
                      (longid: a 200 whose provider_msg_id is 300 characters)
    GET  /__requests  -> [{"time", "path", "signature_ok", "content_type", "json"}, ...]
    POST /__reset
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": {"mode": "ok"}, "requests": [], "sent": 0}
SECRET = b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                self.reply(200, STATE["requests"])
            return
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path == "/__mode":
            with LOCK:
                STATE["mode"] = json.loads(raw or b"{}")
            self.reply(200, STATE["mode"])
            return
        if self.path == "/__reset":
            with LOCK:
                STATE["requests"] = []
            self.reply(200, {})
            return
        if self.path != "/send":
            self.reply(404, {"error": "not found"})
            return
        want = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
        given = self.headers.get("X-BAILEYS-SIGNATURE", "")
        ok = hmac.compare_digest(want, given)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with LOCK:
            STATE["requests"].append({
                "time": time.time(), "path": self.path, "signature_ok": ok,
                "content_type": self.headers.get("Content-Type"), "json": body})
            STATE["sent"] += 1
            sent = STATE["sent"]
            mode = STATE["mode"].get("mode", "ok")
        if not ok:
            self.reply(403, {"error": "invalid signature"})
        elif mode == "503":
            self.reply(503, {"error": "not connected to WhatsApp"})
        elif mode == "garbage":
            self.reply(200, None, raw=b"<html>hello</html>")
        elif mode == "longid":
            self.reply(200, {"provider_msg_id": "L" * 300, "status": "sent"})
        else:
            self.reply(200, {"provider_msg_id": "3EB0%012X" % sent, "status": "sent"})


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    global SECRET
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", required=True)
    args = ap.parse_args()
    SECRET = args.secret.encode()
    server = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
