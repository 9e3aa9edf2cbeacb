#!/usr/bin/python3
"""bench/chaos/load.py: the Twilio side of bench/chaos/run.  Calls and
WhatsApp messages at a steady rate until SIGTERM, then the calls in flight
are played to their end and everything is written to OUT (JSON lines).

    load.py --port N --mock URL --account AC... --token T --secret S \\
            --out FILE [--call-rate 2] [--wa-rate 10] [--media 2]

Each call is tools/simulate-call's (imported, not copied: its signing, its
standard parameters, its connected/start/media/stop messages), played
concurrently, one of:

  normal     stream, real-time media, stop; call_status completed
  dropped    stream, media, then the TCP connection cut (no stop, no
             close); stream_status stream-error; stream_ended (<Connect
             action>) asked what next
  no_stream  the stream never connects; the watchdog must redirect
  silence    media, then silence with the socket open; the watchdog must
             redirect

Whatever the chaos does to a call is handled as Twilio would: a stream
whose upgrade fails or whose connection breaks ends in stream_ended; a
webhook whose connection fails or times out (15 s, Twilio's) is tried
again, at most RETRIES times in all.  Nothing decides here whether a call
ended well: the lines say what happened and bench/chaos/report.pl judges.

Lines:
  {"w": kind, "t": start, "ms": latency, "status": 200 | "reset" | ...}
        one per webhook attempt (t: wall clock, s)
  {"wh": kind, "t", "ms", "status", "attempts"}  one per webhook, from its
        first attempt to its last answer, retries included
  {"call": sid, "scenario", "answered", "stream", "ended", "completed"}
        stream: "stopped" (ran to its stop), "broken", "refused", null;
        ended: stream_ended's answer, "fallback" (<Record>), "empty"
        (<Response/>: already redirected), or null when not asked
  {"msg": id, "provider", "status"}   the last answer for a message
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import importlib.machinery
import importlib.util
import json
import os
import random
import secrets
import signal
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

import websockets

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def simulate_call():
    path = os.path.join(TOP, "tools", "simulate-call")
    loader = importlib.machinery.SourceFileLoader("simulate_call", path)
    spec = importlib.util.spec_from_loader("simulate_call", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


SIM = simulate_call()
PUBLIC = "https://voice.example.com"
RETRIES = 3
RETRY_AFTER = 5.0         # what the module asks with its 503
TWILIO_TIMEOUT = 15.0

OUT = []


def record(line):
    OUT.append(line)


async def http(port, method, path, body, headers, kind, log=True):
    """One HTTP/1.1 request on its own connection; (status, body).  A
    failure is a status string: reset, timeout, refused."""
    t0 = time.time()
    m0 = time.monotonic()
    status, data = None, b""
    writer = None
    try:
        async def go():
            nonlocal writer
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = "%s %s HTTP/1.1\r\nHost: voice.example.com\r\n" \
                   "Connection: close\r\nContent-Length: %d\r\n" % (
                       method, path, len(body))
            head += "".join("%s: %s\r\n" % kv for kv in headers.items())
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            raw = await reader.read()
            return raw
        raw = await asyncio.wait_for(go(), TWILIO_TIMEOUT)
        if not raw.startswith(b"HTTP/1."):
            status = "reset"
        else:
            status = int(raw[9:12])
            data = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    except asyncio.TimeoutError:
        status = "timeout"
    except ConnectionRefusedError:
        status = "refused"
    except (ConnectionError, OSError):
        status = "reset"
    finally:
        if writer is not None:
            writer.close()
    if log:
        record({"w": kind, "t": round(t0, 3),
                "ms": round((time.monotonic() - m0) * 1000, 2),
                "status": status})
    return status, data


async def webhook(port, kind, path, body, headers):
    """Twilio's retry: a connection that fails or times out is tried
    again; any HTTP answer is final (a 503 with Retry-After too, after
    the wait it asks for)."""
    t0, m0 = time.time(), time.monotonic()
    for attempt in range(1, RETRIES + 1):
        status, data = await http(port, "POST", path, body, headers, kind)
        if isinstance(status, int) and status != 503:
            break
        if attempt < RETRIES:
            await asyncio.sleep(RETRY_AFTER if status == 503 else 0.3)
    record({"wh": kind, "t": round(t0, 3), "attempts": attempt,
            "ms": round((time.monotonic() - m0) * 1000, 2), "status": status})
    return status, data


class Call(SIM.Call):
    """simulate-call's call, its HTTP made asynchronous."""

    def __init__(self, args, scenario):
        ns = argparse.Namespace(
            account_sid=args.account, auth_token=args.token,
            scenario=scenario, url=PUBLIC, connect=None,
            twilio_api=args.mock, to="+97231234567",
            caller="+9725%08d" % random.randrange(10 ** 8),
            audio=bytes([SIM.MULAW_SILENCE]) * int(8000 * args.media))
        super().__init__(ns)
        self.port = args.port
        self.res = {"call": self.call_sid, "scenario": scenario,
                    "t": round(time.time(), 3),
                    "answered": None, "stream": None, "ended": None,
                    "completed": None}

    def say(self, step, text):
        pass

    async def hook(self, name, url, params):
        body = urllib.parse.urlencode(params).encode()
        path = urllib.parse.urlsplit(url).path
        return await webhook(self.port, name, path, body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.sign(url, params)})

    async def status_cb(self, event, error=None):
        params = {"AccountSid": self.account, "CallSid": self.call_sid,
                  "StreamSid": self.stream_sid, "StreamEvent": event,
                  "StreamName": self.stream_sid,
                  "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        if error:
            params["StreamError"] = error
        await self.hook("stream_status",
                        PUBLIC + "/webhook/stream_status", params)

    async def redirected(self, timeout):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            st, body = await http(int(urllib.parse.urlsplit(
                self.args.twilio_api).port), "GET",
                "/__requests?call=" + self.call_sid, b"", {}, "mock", False)
            if st == 200 and body.strip() not in (b"", b"[]"):
                return True
            await asyncio.sleep(0.25)
        return False

    async def ended(self):
        """The stream is over without its stop: Twilio asks <Connect
        action> what next."""
        params = self.standard("in-progress")
        st, body = await self.hook("stream_ended",
                                   PUBLIC + "/webhook/stream_ended", params)
        if st != 200:
            self.res["ended"] = "http %s" % st
            return
        try:
            doc = ET.fromstring(body)
            self.res["ended"] = "fallback" if doc.find("Record") is not None \
                else "empty" if len(doc) == 0 else "other"
        except ET.ParseError:
            self.res["ended"] = "unparsable"

    async def play(self, start_timeout, no_media_timeout):
        st, body = await self.hook("incoming_call",
                                   PUBLIC + "/webhook/incoming_call",
                                   self.standard("ringing"))
        self.res["answered"] = st
        if st != 200:
            return
        doc = ET.fromstring(body)
        stream = doc.find("Connect/Stream")
        params = {p.get("name"): p.get("value")
                  for p in stream.findall("Parameter")}
        url = stream.get("url")
        if self.args.scenario == "no_stream":
            self.res["redirect_seen"] = await self.redirected(
                start_timeout + 20)
            await self.completed_async()
            return
        try:
            ws = await websockets.connect(
                "ws://127.0.0.1:%d%s" % (self.port,
                                         urllib.parse.urlsplit(url).path),
                compression=None, open_timeout=TWILIO_TIMEOUT,
                ping_interval=None, close_timeout=5,
                extra_headers={"X-Twilio-Signature": self.sign(url, {})})
        except (OSError, asyncio.TimeoutError,
                websockets.exceptions.WebSocketException):
            self.res["stream"] = "refused"
            await self.status_cb("stream-error", "upgrade failed")
            await self.ended()
            await self.completed_async()
            return
        try:
            await self.start(ws, params)
            await self.status_cb("stream-started")
            await self.media(ws, self.args.audio)
            if self.args.scenario == "normal":
                await self.stop(ws)
                self.res["stream"] = "stopped"
                await self.status_cb("stream-stopped")
            elif self.args.scenario == "dropped":
                ws.transport.abort()
                self.res["stream"] = "broken"
            else:                                   # silence
                seen = await self.redirected(no_media_timeout + 20)
                self.res["redirect_seen"] = seen
                await self.stop(ws)
                self.res["stream"] = "stopped_after_redirect"
                await self.status_cb("stream-stopped")
        except websockets.exceptions.ConnectionClosed:
            self.res["stream"] = "broken"
        if self.res["stream"] == "broken":
            await self.status_cb("stream-error",
                                 "Stream - WebSocket - Connection Broken Pipe")
            await self.ended()
        await self.completed_async()

    async def completed_async(self):
        params = self.standard("completed")
        params.update(CallDuration="3", Duration="1",
                      CallbackSource="call-progress-events")
        st, _ = await self.hook("call_status",
                                PUBLIC + "/webhook/call_status", params)
        self.res["completed"] = st


async def one_call(args, scenario):
    call = Call(args, scenario)
    try:
        await call.play(args.start_timeout, args.no_media_timeout)
    except Exception as e:                       # a bug here, not there
        call.res["error"] = "%s: %s" % (type(e).__name__, e)
    record(call.res)


async def one_message(args, n):
    t = round(time.time(), 3)
    if n % 2:
        mid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": mid, "AccountSid": args.account,
                  "From": "whatsapp:+9725%08d" % random.randrange(10 ** 8),
                  "To": "whatsapp:+14155238886", "Body": "chaos %d" % n,
                  "NumMedia": "0"}
        url = PUBLIC + "/webhook/whatsapp/twilio"
        data = url + "".join(k + v for k, v in sorted(params.items()))
        sig = base64.b64encode(hmac.new(args.token.encode(), data.encode(),
                                        hashlib.sha1).digest()).decode()
        st, _ = await webhook(args.port, "whatsapp_twilio",
                              "/webhook/whatsapp/twilio",
                              urllib.parse.urlencode(params).encode(), {
                                  "Content-Type":
                                      "application/x-www-form-urlencoded",
                                  "X-Twilio-Signature": sig})
        provider = "twilio"
    else:
        mid = "BAE5" + secrets.token_hex(8).upper()
        body = json.dumps({"from": "+9725%08d" % random.randrange(10 ** 8),
                           "text": "chaos %d" % n, "media_url": None,
                           "provider_msg_id": mid}).encode()
        sig = hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
        st, _ = await webhook(args.port, "whatsapp_baileys",
                              "/webhook/whatsapp/baileys", body, {
                                  "Content-Type": "application/json",
                                  "X-BAILEYS-SIGNATURE": sig})
        provider = "baileys"
    record({"msg": mid, "provider": provider, "status": st, "t": t})


async def paced(rate, make, stop):
    """make(n) started every 1/rate s (open loop) until stop is set."""
    tasks, n, t0 = set(), 0, time.monotonic()
    while not stop.is_set() and rate > 0:
        n += 1
        task = asyncio.ensure_future(make(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        delay = t0 + n / rate - time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), max(delay, 0))
        except asyncio.TimeoutError:
            pass
    if tasks:
        await asyncio.wait(tasks)


async def main(args):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    mix = []
    for part in args.mix.split(","):
        name, _, weight = part.partition(":")
        mix += [name] * int(weight or 1)
    rnd = random.Random(args.seed)
    await asyncio.gather(
        paced(args.call_rate, lambda n: one_call(args, rnd.choice(mix)), stop),
        paced(args.wa_rate, lambda n: one_message(args, n), stop))
    with open(args.out, "w") as f:
        for line in OUT:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mock", required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--call-rate", type=float, default=2)
    ap.add_argument("--wa-rate", type=float, default=10)
    ap.add_argument("--media", type=float, default=2.0)
    ap.add_argument("--mix", default="normal:4,dropped:2,no_stream:1,silence:1")
    ap.add_argument("--start-timeout", type=float, default=3)
    ap.add_argument("--no-media-timeout", type=float, default=3)
    ap.add_argument("--seed", type=int, default=None)
    asyncio.run(main(ap.parse_args()))
