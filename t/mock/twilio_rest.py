#!/usr/bin/python3
"""A stand-in for Twilio's REST API in tests: records every request and
answers as told.  Python's standard library only.

    twilio_rest.py [--port N] [--account-sid AC --auth-token T]
                                     prints "PORT <n>" when listening

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
    GET  /__requests?call=CA...  only the requests about that call (its
                      redirects): how tools/simulate-call learns of one
    POST /__reset     forget the recorded requests and counters
    PUT  /__recordings/RE...  the body (a WAV) becomes that recording; an
                      empty body, a generated one (a second of a tone)

Recordings, as Twilio serves them to whoever has the RecordingUrl:
    GET /2010-04-01/Accounts/{AC}/Recordings/{RE}[.wav]  audio/x-wav, behind
                      HTTP Basic auth when --account-sid and --auth-token
                      are given (401 otherwise, as Twilio with "Enforce HTTP
                      Auth on Media URLs"); fetches are recorded too
"""

import argparse
import base64
import hmac
import io
import json
import math
import sys
import threading
import time
import urllib.parse
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": {"mode": "ok"}, "requests": [], "seen": {}}
RECORDINGS = {}             # RecordingSid -> WAV bytes
CREDENTIALS = {}            # "account_sid", "auth_token" from the command line


def tone_wav(seconds=1.0, rate=8000, hz=440):
    """A WAV nobody uploaded: a tone, so that a transcriber gets audio."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            int(8000 * math.sin(2 * math.pi * hz * i / rate)).to_bytes(
                2, "little", signed=True)
            for i in range(int(seconds * rate))))
    return out.getvalue()


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
        path, _, query = self.path.partition("?")
        if path == "/__requests":
            call = urllib.parse.parse_qs(query).get("call", [None])[0]
            with LOCK:
                got = [r for r in STATE["requests"]
                       if call is None or "/Calls/%s.json" % call in r["path"]]
                self.reply(200, got)
            return
        parts = path.split("/")
        # /2010-04-01/Accounts/{AC}/Recordings/{RE}[.wav]
        if (len(parts) == 6 and parts[1] == "2010-04-01"
                and parts[2] == "Accounts" and parts[4] == "Recordings"):
            self.recording(parts[3], parts[5])
            return
        self.reply(404, {"code": 20404, "message": "not found"})

    def do_PUT(self):
        raw = self.body()
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "__recordings" \
                and parts[2].startswith("RE"):
            with LOCK:
                RECORDINGS[parts[2]] = raw or tone_wav()
            self.reply(201, {"sid": parts[2], "bytes": len(RECORDINGS[parts[2]])})
            return
        self.reply(404, {"code": 20404, "message": "not found"})

    def authorized(self, account):
        """Basic auth as Twilio checks it: account sid and auth token."""
        if not CREDENTIALS:
            return True
        want = "Basic " + base64.b64encode(("%s:%s" % (
            CREDENTIALS["account_sid"], CREDENTIALS["auth_token"])).encode()).decode()
        got = self.headers.get("Authorization") or ""
        return (hmac.compare_digest(got.encode(), want.encode())
                and account == CREDENTIALS["account_sid"])

    def recording(self, account, name):
        """GET a recording's audio: WAV, whether asked with .wav or bare."""
        sid = name[:-4] if name.endswith(".wav") else name
        ok = self.authorized(account)
        with LOCK:
            data = RECORDINGS.get(sid)
            STATE["requests"].append({
                "time": time.time(), "method": "GET", "path": self.path,
                "auth": self.headers.get("Authorization"),
                "status": 200 if ok and data else 401 if not ok else 404})
        if not ok:
            self.reply(401, {"code": 20003, "status": 401,
                             "message": "Authenticate",
                             "more_info": "https://www.twilio.com/docs/errors/20003"},
                       {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return
        if data is None:
            self.reply(404, {"code": 20404, "status": 404,
                             "message": "The requested resource %s was not found"
                                        % self.path})
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/x-wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
    ap.add_argument("--account-sid", help="with --auth-token: what Basic "
                    "auth on recordings must carry")
    ap.add_argument("--auth-token")
    args = ap.parse_args()
    if args.account_sid and args.auth_token:
        CREDENTIALS.update(account_sid=args.account_sid,
                           auth_token=args.auth_token)
    server = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
