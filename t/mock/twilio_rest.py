#!/usr/bin/python3
"""A stand-in for Twilio's REST API in tests: records every request and
answers as told.  Python's standard library only.

    twilio_rest.py [--port N]        prints "PORT <n>" when listening

Control (JSON bodies):
    POST /__mode      {"mode": "ok" | "fail" | "429" | "21220" | "400" | "delay",
                       "fail_times": N,      # "fail": 500 N times per call, then 200
                       "retry_after": S,     # "429": Retry-After seconds (once per call)
                       "delay_ms": N}        # wait this long before any answer
                                             # ("delay": then 200)
                       "messages": "ok" | "500" | "63016" | "nosid"}
                                             # Messages.json: 201, 500, 400
                                             # with Twilio's code, or 201
                                             # without a sid
    GET  /__requests  -> [{"time", "method", "path", "auth", "form"}, ...]
    POST /__reset     forget the recorded requests and counters
"""

import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": {"mode": "ok"}, "requests": [], "seen": {}}


def call_json(call_sid, account):
    return {"sid": call_sid, "account_sid": account, "status": "in-progress",
            "api_version": "2010-04-01", "direction": "inbound"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, obj, headers=None):
        if self.path.startswith("/2010-04-01/"):
            # when the answer went out, beside the request's arrival
            with LOCK:
                for r in reversed(STATE["requests"]):
                    if r["path"] == self.path and "answered" not in r:
                        r["answered"] = time.time()
                        r["status"] = status
                        break
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                self.reply(200, STATE["requests"])
            return
        self.reply(404, {"code": 20404, "message": "not found"})

    def do_POST(self):
        raw = self.body()
        if self.path == "/__mode":
            with LOCK:
                STATE["mode"] = json.loads(raw or b"{}")
                STATE["seen"] = {}
            self.reply(200, STATE["mode"])
            return
        if self.path == "/__reset":
            with LOCK:
                STATE["requests"] = []
                STATE["seen"] = {}
            self.reply(200, {})
            return

        parts = self.path.split("/")
        if (len(parts) == 5 and parts[1] == "2010-04-01"
                and parts[2] == "Accounts" and parts[4] == "Messages.json"):
            self.message(parts[3], raw)
            return
        # /2010-04-01/Accounts/{AC}/Calls/{CA}.json
        if (len(parts) != 6 or parts[1] != "2010-04-01"
                or parts[2] != "Accounts" or parts[4] != "Calls"
                or not parts[5].endswith(".json")):
            self.reply(404, {"code": 20404, "message": "not found"})
            return
        account, call = parts[3], parts[5][:-5]
        form = self.record(raw)
        with LOCK:
            n = STATE["seen"].get(call, 0) + 1
            STATE["seen"][call] = n
            mode = dict(STATE["mode"])

        m = mode.get("mode", "ok")
        if mode.get("delay_ms"):
            time.sleep(int(mode["delay_ms"]) / 1000.0)
        if m == "fail" and n <= int(mode.get("fail_times", 1)):
            self.reply(500, {"code": 20500, "message": "Internal Server Error"})
        elif m == "429" and n == 1:
            self.reply(429, {"code": 20429, "message": "Too Many Requests"},
                       {"Retry-After": str(mode.get("retry_after", 1))})
        elif m == "21220":
            self.reply(400, {"code": 21220, "status": 400,
                             "message": "Call is not in-progress. Cannot redirect.",
                             "more_info": "https://www.twilio.com/docs/errors/21220"})
        elif m == "400":
            self.reply(400, {"code": 21218, "status": 400,
                             "message": "Invalid ApplicationSid"})
        else:
            self.reply(200, call_json(call, account))

    def record(self, raw):
        """The request's form, kept for GET /__requests."""
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        with LOCK:
            STATE["requests"].append({
                "time": time.time(), "method": "POST", "path": self.path,
                "auth": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "form": form})
        return form

    def message(self, account, raw):
        """POST .../Messages.json: a WhatsApp message sent through Twilio."""
        form = self.record(raw)
        with LOCK:
            STATE["messages"] = STATE.get("messages", 0) + 1
            n = STATE["messages"]
            mode = dict(STATE["mode"])
        m = mode.get("messages", "ok")
        if m == "500":
            self.reply(500, {"code": 20500, "message": "Internal Server Error"})
        elif m == "63016":
            self.reply(400, {"code": 63016, "status": 400,
                             "message": "Failed to send freeform message because "
                                        "you are outside the allowed window."})
        elif m == "nosid":
            self.reply(201, {"status": "queued"})
        else:
            self.reply(201, {"sid": "SM%032x" % n, "account_sid": account,
                             "status": "queued", "to": form.get("To", [""])[0],
                             "from": form.get("From", [""])[0],
                             "body": form.get("Body", [""])[0],
                             "direction": "outbound-api"})


class Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of redirects from
    # several workers would have SYNs dropped and stall for seconds
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a worker killed by a test leaves its requests unanswerable
        if not isinstance(sys.exc_info()[1], (BrokenPipeError,
                                              ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
