#!/usr/bin/python3
"""A stand-in for an OpenAI-compatible transcription service in tests, and
for the Twilio recordings it transcribes: records every request and answers
with a digest of the audio it received, so a test can prove which bytes
travelled.  Python's standard library only.

    transcriber.py [--port N] [--account AC.. --token T]
                                     prints "PORT <n>" when listening

POST /v1/audio/transcriptions   multipart/form-data: file, model,
                                response_format, language
    -> {"text": "sha256=<hex of file> bytes=<n> שלום"}
GET  <anything>/Recordings/<RE...>.wav   Basic auth account:token
    -> the recording's WAV (PUT /__recordings/<RE...> first), else 404

Control:
    POST /__mode       {"mode": "ok" | "500" | "garbage" | "notext" | "slow",
                        "delay_ms": N}
    PUT  /__recordings/<RE...>   the body is that recording's WAV
    GET  /__requests   -> [{"path", "auth", "fields": {...}, "file": {"name",
                            "type", "sha256", "size"}}, ...]
"""

import argparse
import base64
import email.parser
import email.policy
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": {"mode": "ok"}, "requests": [], "recordings": {}}
CREDENTIALS = None


def parse_multipart(content_type, raw):
    """The form's fields and its file, as email's MIME parser reads them."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields, upload = {}, None
    if not msg.is_multipart():
        return fields, upload
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            upload = {"field": name, "name": part.get_filename(),
                      "type": part.get_content_type(),
                      "sha256": hashlib.sha256(data).hexdigest(),
                      "size": len(data)}
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, upload


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj, raw=None, ctype="application/json"):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                self.reply(200, STATE["requests"])
            return
        m = re.search(r"/Recordings/(RE[0-9a-f]{32})\.wav$", self.path)
        auth = self.headers.get("Authorization", "")
        with LOCK:
            STATE["requests"].append({"time": time.time(), "method": "GET",
                                      "path": self.path, "auth": auth})
            wav = STATE["recordings"].get(m.group(1)) if m else None
        if auth != "Basic " + base64.b64encode(CREDENTIALS).decode():
            self.reply(401, {"code": 20003, "message": "Authenticate"})
        elif wav is None:
            self.reply(404, {"code": 20404, "message": "not found"})
        else:
            self.reply(200, None, raw=wav, ctype="audio/x-wav")

    def do_PUT(self):
        raw = self.body()
        m = re.match(r"^/__recordings/(RE[0-9a-f]{32})$", self.path)
        if not m:
            self.reply(404, {"error": "not found"})
            return
        with LOCK:
            STATE["recordings"][m.group(1)] = raw
        self.reply(200, {"size": len(raw)})

    def do_POST(self):
        raw = self.body()
        if self.path == "/__mode":
            with LOCK:
                STATE["mode"] = json.loads(raw or b"{}")
            self.reply(200, STATE["mode"])
            return
        if self.path != "/v1/audio/transcriptions":
            self.reply(404, {"error": "not found"})
            return
        fields, upload = parse_multipart(self.headers.get("Content-Type", ""), raw)
        with LOCK:
            STATE["requests"].append({
                "time": time.time(), "method": "POST", "path": self.path,
                "auth": self.headers.get("Authorization", ""),
                "content_type": self.headers.get("Content-Type", ""),
                "fields": fields, "file": upload})
            mode = dict(STATE["mode"])
        if mode.get("delay_ms"):
            time.sleep(mode["delay_ms"] / 1000.0)
        if mode.get("mode") == "500":
            self.reply(500, {"error": {"message": "the model is overloaded"}})
        elif mode.get("mode") == "garbage":
            self.reply(200, None, raw=b"<html>hello</html>")
        elif mode.get("mode") == "notext":
            self.reply(200, {"task": "transcribe"})
        elif upload is None:
            self.reply(400, {"error": {"message": "no file"}})
        else:
            self.reply(200, {"text": "sha256=%s bytes=%d שלום" %
                             (upload["sha256"], upload["size"])})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that gave up (a timeout, an answer too large) is a test
        # case here, not a fault of the mock
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    global CREDENTIALS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--account", default="AC" + "1" * 32)
    ap.add_argument("--token", default="secret-token")
    args = ap.parse_args()
    CREDENTIALS = ("%s:%s" % (args.account, args.token)).encode()
    server = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
