#!/usr/bin/python3
"""A Twilio-like Media Streams client on Python's `websockets` (Debian's
python3-websockets): an implementation independent of ours and of the Perl
one in t/lib.  Usage: twilio_stream.py URL N FRAMES [echo]

Sends connected, start, FRAMES media messages (160 bytes each), a mark and
stop, then closes with 1000.  A wss:// URL is verified against the CA file
in $TWILIO_STREAM_CAFILE (else the system's).  In echo mode it checks every media message
comes back with the same audio and the mark is answered.  Prints one JSON
line with what it saw; exits non-zero on any surprise."""

import asyncio
import base64
import json
import os
import ssl
import sys

import websockets


async def main(url, n, frames, echo):
    call = "CA%032x" % n
    stream = "MZ%032x" % n
    seen = {"echoed": 0, "marks": 0}
    tls = None
    if url.startswith("wss://"):
        tls = ssl.create_default_context(
            cafile=os.environ.get("TWILIO_STREAM_CAFILE"))
    async with websockets.connect(url, max_size=2 ** 20, ssl=tls) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call",
                                  "version": "1.0.0"}))
        await ws.send(json.dumps({
            "event": "start", "sequenceNumber": "1", "streamSid": stream,
            "start": {"accountSid": "AC" + "b" * 32, "streamSid": stream,
                      "callSid": call, "tracks": ["inbound"],
                      "mediaFormat": {"encoding": "audio/x-mulaw",
                                      "sampleRate": 8000, "channels": 1},
                      "customParameters": {"call_sid": call}}}))
        for i in range(frames):
            audio = bytes((i + k) % 256 for k in range(160))
            await ws.send(json.dumps({
                "event": "media", "sequenceNumber": str(i + 2),
                "streamSid": stream,
                "media": {"track": "inbound", "chunk": str(i + 1),
                          "timestamp": str(i * 20),
                          "payload": base64.b64encode(audio).decode()}}))
            if echo:
                back = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert back["event"] == "media", back
                assert back["streamSid"] == stream, back
                assert base64.b64decode(back["media"]["payload"]) == audio
                seen["echoed"] += 1
        await ws.send(json.dumps({"event": "mark", "streamSid": stream,
                                  "mark": {"name": "done"}}))
        if echo:
            back = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert back == {"event": "mark", "streamSid": stream,
                            "mark": {"name": "done"}}, back
            seen["marks"] += 1
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "9999",
                                  "streamSid": stream,
                                  "stop": {"accountSid": "AC" + "b" * 32,
                                           "callSid": call}}))
        await ws.close(code=1000)
        seen["close_code"] = ws.close_code
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                     len(sys.argv) > 4 and sys.argv[4] == "echo"))
