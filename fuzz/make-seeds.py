#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (stdlib only, deterministic).

    /usr/bin/python3 fuzz/make-seeds.py

corpus/ws_frames/*: byte 0 picks max_message (see maxes[] in ws_frames.c:
9 = 1024, 13 = 65536, 15 = SIZE_MAX), byte 1 the chunk pattern, then the
client's byte stream: masked frames as Twilio sends them, and broken ones.
corpus/twilio_event/*: Media Streams messages shaped like real traffic
(../shared/twilio-facts.md section 2), and malformed ones.
corpus/spool_record/*: CRM spool journals (src/ngx_agentlocator_spool_record.h)
as a worker writes them, and torn, damaged and foreign ones.
corpus/json_fields/*: the Baileys bridge's bodies, the API's send bodies,
JWT headers and claims, jsonb the database gives back; and malformed ones.
corpus/jwt/*: tokens (good, expired, alg none, HS384, malformed base64) and
JWT claims (the target also signs its input as claims).
corpus/form/*: byte 0 the room for pairs (< 200: the module's), then
Twilio's webhook bodies (voice, status, recording, WhatsApp) and broken ones.
corpus/signature/*: flags, mutation, token, URL and body of Twilio's
published vectors (../shared/twilio-facts.md section 1), the signature after.
corpus/api_args/*: byte 0 a page (threads, calls, customers), then
the CRM API's paths and query strings, good and refused.
corpus/wa_body/*: the Baileys bridge's webhook bodies and the API's send
requests, good and refused.
corpus/media_upgrade/*: byte 0 the header value's length, the value
(Connection, Upgrade), then a Media Streams upgrade path.
corpus/wa_form/*: byte 0 flags (see made() in wa_form.c), then Twilio's
WhatsApp webhook bodies (inbound text, media, location, status callbacks)
as Twilio posts them, and each way refused.
corpus/hide_token/*: 8 bytes of offsets (the line, the span, where the
query begins), then request lines of the Media Streams upgrade.
corpus/service_reply/*: Twilio's and the Baileys bridge's replies to a
send (sent, refused with a code), the transcriber's answers, and broken
ones; the target also reads byte 0 as which fields to make.
Existing files in these directories are replaced.
"""

import base64
import json
import os
import random
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = random.Random(6455)

MAX_1024 = 9
MAX_64K = 13
MAX_HUGE = 15

STREAM = "MZ" + "18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA" + "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "fedcba9876543210fedcba9876543210"


def mulaw(n):
    # 20 ms of 8 kHz mu-law looks like noise around 0xff/0x7f
    return bytes(RNG.choice((0xff, 0xfe, 0x7f, 0x7e, 0xfd, 0x7d, 0xef, 0x6f))
                 ^ RNG.randrange(8) for _ in range(n))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def connected():
    return dumps({"event": "connected", "protocol": "Call",
                  "version": "1.0.0"})


def start(stream=STREAM, params=None):
    return dumps({
        "event": "start", "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT, "streamSid": stream, "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                            "channels": 1},
            "customParameters": params if params is not None else {
                "call_sid": CALL, "FirstName": "Jane", "LastName": "Doe",
                "RemoteParty": "Bob"},
        },
        "streamSid": stream,
    })


def media(seq, chunk, ts, payload, track="inbound"):
    return dumps({
        "event": "media", "sequenceNumber": str(seq),
        "media": {"track": track, "chunk": str(chunk), "timestamp": str(ts),
                  "payload": base64.b64encode(payload).decode()},
        "streamSid": STREAM,
    })


def mark(seq, name):
    return dumps({"event": "mark", "sequenceNumber": str(seq),
                  "streamSid": STREAM, "mark": {"name": name}})


def dtmf(seq, digit):
    return dumps({"event": "dtmf", "streamSid": STREAM,
                  "sequenceNumber": str(seq),
                  "dtmf": {"track": "inbound_track", "digit": digit}})


def stop(seq):
    return dumps({"event": "stop", "sequenceNumber": str(seq),
                  "stop": {"accountSid": ACCOUNT, "callSid": CALL},
                  "streamSid": STREAM})


# --- RFC 6455 client frames ------------------------------------------------

def frame(opcode, payload, fin=True, masked=True, rsv=0, length=None,
          form=None, key=None):
    """A client frame; length/form override the header for broken ones."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if masked else 0
    if form is None:
        form = 7 if n < 126 else 16 if n <= 0xffff else 64
    if form == 7:
        head = bytes((b0, m | n))
    elif form == 16:
        head = bytes((b0, m | 126)) + struct.pack(">H", n)
    else:
        head = bytes((b0, m | 127)) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = key if key is not None else bytes(RNG.randrange(256)
                                            for _ in range(4))
    body = bytes(c ^ key[i & 3] for i, c in enumerate(payload))
    return head + key + body


def text(s, **kw):
    return frame(0x1, s if isinstance(s, bytes) else s.encode(), **kw)


def close(code=None, reason=b""):
    return frame(0x8, b"" if code is None else struct.pack(">H", code)
                 + reason)


def ws_seed(max_sel, split, *frames):
    return bytes((max_sel, split)) + b"".join(frames)


def ws_seeds():
    audio = [mulaw(160) for _ in range(3)]
    session = [text(connected()), text(start())]
    session += [text(media(i + 2, i + 1, 20 * i + 52, a))
                for i, a in enumerate(audio)]
    session += [text(mark(5, "Repeat message 0")), text(dtmf(6, "1")),
                text(stop(7)), close(1000, b"Repeated 5 times")]

    msg = start().decode()
    third = len(msg) // 3
    euro = "price: 5\u20ac".encode()          # the euro sign split below

    return {
        # realistic traffic
        "text-connected": ws_seed(MAX_64K, 0x00, text(connected())),
        "text-start-16bit": ws_seed(MAX_64K, 0x05, text(start())),
        "text-media-160": ws_seed(MAX_64K, 0x0a, text(media(2, 1, 52,
                                                            audio[0]))),
        "session": ws_seed(MAX_64K, 0x1f, *session),
        "session-bytewise": ws_seed(MAX_64K, 0x00, *session),
        "session-random-chunks": ws_seed(MAX_64K, 0x41, *session),
        "session-header-sizes": ws_seed(MAX_64K, 0x06, *session),
        "session-min-1024": ws_seed(MAX_1024, 0x83, *session),
        "fragmented-text-ping": ws_seed(
            MAX_64K, 0x0d,
            text(msg[:third], fin=False),
            frame(0x9, b"keepalive"),
            frame(0x0, msg[third:2 * third].encode(), fin=False),
            frame(0xa, b""),
            frame(0x0, msg[2 * third:].encode())),
        "fragmented-utf8-split": ws_seed(
            MAX_64K, 0x02,
            text(euro[:-2], fin=False), frame(0x0, euro[-2:-1], fin=False),
            frame(0x0, euro[-1:])),
        "ping-pong": ws_seed(MAX_64K, 0x11, frame(0x9, b"\x00\x01ping"),
                             frame(0xa, bytes(range(125)))),
        "close-code-reason": ws_seed(MAX_64K, 0x22,
                                     close(1000, b"Repeated 5 times")),
        "close-empty": ws_seed(MAX_64K, 0x03, close()),
        "close-4000-utf8": ws_seed(MAX_64K, 0x07,
                                   close(4000, "d\u00e9j\u00e0".encode())),
        "empty-text-binary": ws_seed(MAX_64K, 0x04, frame(0x2, b""),
                                     text(b"{}"), text(b"")),
        "binary-64bit": ws_seed(MAX_64K, 0xff,
                                frame(0x2, mulaw(0x10000))),
        "binary-64bit-truncated": ws_seed(MAX_HUGE, 0x09,
                                          frame(0x2, mulaw(300),
                                                length=0x12345, form=64)),
        "text-16bit-max-126": ws_seed(6, 0x01, text("x" * 126)),
        # broken: each ends the stream with a close code
        "bad-unmasked": ws_seed(MAX_64K, 0x00, text(connected(),
                                                    masked=False)),
        "bad-rsv1": ws_seed(MAX_64K, 0x00, text(b"{}", rsv=4)),
        "bad-opcode-3": ws_seed(MAX_64K, 0x00, frame(0x3, b"x")),
        "bad-continuation-first": ws_seed(MAX_64K, 0x00, frame(0x0, b"x")),
        "bad-text-in-fragment": ws_seed(MAX_64K, 0x00,
                                        text(b"{", fin=False), text(b"}")),
        "bad-fragmented-ping": ws_seed(MAX_64K, 0x00,
                                       frame(0x9, b"p", fin=False)),
        "bad-ping-126": ws_seed(MAX_64K, 0x00, frame(0x9, b"p" * 126)),
        "bad-nonminimal-16": ws_seed(MAX_64K, 0x00,
                                     text(b"x" * 5, form=16)),
        "bad-nonminimal-64": ws_seed(MAX_64K, 0x00,
                                     text(b"x" * 200, form=64)),
        "bad-64bit-top-bit": ws_seed(MAX_HUGE, 0x00,
                                     frame(0x2, b"", length=1 << 63,
                                           form=64)),
        "bad-too-big": ws_seed(MAX_1024, 0x00, text("y" * 2000)),
        "bad-too-big-fragments": ws_seed(MAX_1024, 0x00,
                                         text("a" * 600, fin=False),
                                         frame(0x0, b"b" * 600)),
        "bad-utf8-text": ws_seed(MAX_64K, 0x00,
                                 text(b"{\"event\":\"\xc0\xaf\"}")),
        "bad-utf8-surrogate": ws_seed(MAX_64K, 0x00, text(b"\xed\xa0\x80")),
        "bad-close-1-byte": ws_seed(MAX_64K, 0x00, frame(0x8, b"\x03")),
        "bad-close-1005": ws_seed(MAX_64K, 0x00, close(1005)),
        "bad-close-reason-utf8": ws_seed(MAX_64K, 0x00,
                                         close(1000, b"\xff\xfe")),
        "bad-after-close": ws_seed(MAX_64K, 0x00, close(1001),
                                   text(b"late"), b"\x00\x00"),
    }


# --- Twilio messages ---------------------------------------------------------

def twilio_seeds():
    second = mulaw(8000)
    return {
        "connected": connected(),
        "connected-spaced": b'{"event": "connected", "protocol": "Call", '
                            b'"version": "1.0.0"}',
        "start": start(),
        "start-uuid-no-params": start(
            stream="9e7ee906-377b-408f-a852-eebfb834422a", params={}),
        "start-long-sids": start(stream="MZ" + "f" * 100,
                                 params={"call_sid": "CA" + "e" * 80}),
        "media-160": media(2, 1, 52, mulaw(160)),
        "media-outbound": media(9, 8, 192, mulaw(160), track="outbound"),
        "media-1s": media(40, 39, 832, second),
        "media-empty-payload": media(3, 2, 72, b""),
        "media-padding-1": media(3, 2, 72, b"\xff\xfe"),
        "media-padding-2": media(3, 2, 72, b"\xff"),
        "mark": mark(4, "my label"),
        "mark-unicode-escape": b'{"event":"mark","sequenceNumber":"103",'
                               b'"streamSid":"' + STREAM.encode()
                               + b'","mark":{"name":"Repeat \\u00e9 0"}}',
        "dtmf": dtmf(5, "1"),
        "dtmf-hash": dtmf(6, "#"),
        "stop": stop(8),
        "clear-unknown-event": dumps({"event": "clear",
                                      "streamSid": STREAM}),
        "extra-fields": dumps({"event": "media", "sequenceNumber": "4",
                               "extra": [1, 2.5, None, True, {"a": []}],
                               "media": {"payload": "AAAA",
                                         "chunk": 7}}),
        # malformed
        "bad-no-event": dumps({"streamSid": STREAM}),
        "bad-event-number": b'{"event":3}',
        "bad-media-no-payload": dumps({"event": "media",
                                       "media": {"track": "inbound"}}),
        "bad-base64-alphabet": dumps({"event": "media",
                                      "media": {"payload": "ab-_"}}),
        "bad-base64-length": dumps({"event": "media",
                                    "media": {"payload": "abcde"}}),
        "bad-base64-mid-padding": dumps({"event": "media",
                                         "media": {"payload": "ab==cdef"}}),
        "bad-truncated": start()[:97],
        "bad-nested": b'{"event":"stop","x":' + b"[" * 9 + b"]" * 9 + b"}",
        "bad-not-json": b"event=media&payload=AAAA",
        "bad-array-top": b'[{"event":"connected"}]',
        "bad-trailing": connected() + b"{}",
        "bad-utf8": b'{"event":"mark","mark":{"name":"\xc3\x28"}}',
        "bad-sample-rate": b'{"event":"start","start":{"mediaFormat":'
                           b'{"sampleRate":-8000.5,"channels":1e3}}}',
    }


def spool_record(name, *params):
    payload = bytes([len(name)]) + name + bytes([len(params)])
    for p in params:
        if p is None:
            payload += struct.pack("<i", -1)
        else:
            payload += struct.pack("<i", len(p)) + p
    return struct.pack("<III", 0x314C5341, len(payload),
                       zlib.crc32(payload)) + payload


def spool_seeds():
    at = b"1764700000.123456"
    incoming = spool_record(b"incoming_call", CALL.encode(), ACCOUNT.encode(),
                            b"+15551230000", b"+15557650000", at)
    status = spool_record(b"call_status", CALL.encode(), b"completed", b"7",
                          at, b"t")
    event = spool_record(b"call_event", CALL.encode(), b"stream_drop",
                         b"close_1006", at,
                         (CALL + ":stream_drop:" + STREAM).encode(),
                         STREAM.encode(), b"42", None, None, b"f", None, None,
                         None)
    hebrew = spool_record(b"incoming_call", CALL.encode(), None,
                          "'); DROP TABLE calls; -- \u05e9\u05dc\u05d5\u05dd"
                          .encode(), b"+972", at)
    journal = incoming + status + event + hebrew
    damaged = bytearray(journal)
    damaged[len(incoming) + 20] ^= 0x55
    return {
        "one": incoming,
        "journal": journal,
        "torn-last": journal[:-7],
        "torn-header": journal + incoming[:7],
        "damaged-middle": bytes(damaged),
        "garbage-between": incoming + b"\0" * 13 + b"ASL" + status,
        "foreign": spool_record(b"from_the_future", b"x") + status,
        "null-params": spool_record(b"recording", CALL.encode(), None, None,
                                    None, b"/tmp/x.wav", at),
        "empty": b"",
    }


def json_seeds():
    he = "\u05e9\u05dc\u05d5\u05dd \U0001F44B"
    return {
        "baileys": json.dumps({"from": "+972541112222", "text": he,
                               "media_url": None, "provider_msg_id": "3EB0A1",
                               "name": "Dana", "timestamp": 1718000000},
                              ensure_ascii=False).encode(),
        "send": json.dumps({"to": "+972541112222", "text": "hi",
                            "media_url": "https://x/p.jpg",
                            "provider": "auto"}).encode(),
        "claims": b'{"business_id":1,"role":"agent","exp":1800000600,"nbf":1.5}',
        "claims-string-id": b'{"business_id":"42","role":"viewer","exp":1e10}',
        "header": b'{"alg":"HS256","typ":"JWT"}',
        "media": b'[{"url":"https://x/a\\"b","content_type":"image/png"}]',
        "detail": b'{"stream_sid":"MZ1","frames":12,"code":21220}',
        "nested": b'{"any":{"a":[1,{"b":[true,false,null]}]},"ok":true}',
        "twice": b'{"from":"+1","from":"+2"}',
        "nul": b'{"text":"a\\u0000b"}',
        "deep": b"[" * 40 + b"]" * 40,
        "big-int": b'{"id":99999999999999999999}',
        "not-object": b'"text"',
        "truncated": b'{"from":"+97254',
        "empty": b"",
    }


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def jwt_seeds():
    import hashlib
    import hmac
    key = b"fuzz-key-0123456789-0123456789-abcdef"

    def token(header, claims, k=key, digest=hashlib.sha256):
        h = b64url(json.dumps(header).encode())
        p = b64url(json.dumps(claims).encode())
        s = b64url(hmac.new(k, h + b"." + p, digest).digest())
        return h + b"." + p + b"." + s

    good = {"business_id": 1, "role": "agent", "exp": 1800000600}
    return {
        "good": token({"alg": "HS256", "typ": "JWT"}, good),
        "expired": token({"alg": "HS256"}, dict(good, exp=1700000000)),
        "nbf-future": token({"alg": "HS256"}, dict(good, nbf=1900000000)),
        "none": b64url(b'{"alg":"none"}') + b"." + b64url(json.dumps(good).encode()) + b".",
        "hs384": token({"alg": "HS384"}, good, digest=hashlib.sha384),
        "wrong-key": token({"alg": "HS256"}, good, k=b"another-key-0123456789-0123456789"),
        "padded": token({"alg": "HS256"}, good) + b"=",
        "bad-char": b"eyJhbGciOiJIUzI1NiJ9.e*J9.AAAA",
        "claims": json.dumps(good).encode(),
        "claims-no-exp": b'{"business_id":1,"role":"agent"}',
        "empty": b"",
    }


def form_seeds():
    from urllib.parse import urlencode
    voice = urlencode({"AccountSid": ACCOUNT, "CallSid": CALL,
                       "From": "+15551234567", "To": "+15557654321",
                       "CallStatus": "ringing", "Direction": "inbound",
                       "ApiVersion": "2010-04-01"}).encode()
    wa = urlencode({"MessageSid": "SM" + "0" * 32, "From": "whatsapp:+1555",
                    "To": "whatsapp:+1444", "Body": "Hello world & more",
                    "ProfileName": "Zo\u00eb", "NumMedia": "1",
                    "MediaUrl0": "https://api.twilio.com/x?a=1&b=2",
                    "MediaContentType0": "image/jpeg"}).encode()
    many = b"&".join(b"k%d=v" % i for i in range(129))
    return {
        "voice": b"\0" + voice,
        "whatsapp": b"\0" + wa,
        "status": b"\0CallSid=" + CALL.encode()
                  + b"&CallStatus=completed&CallDuration=42",
        "digits-twice": b"\0Digits=5678&Digits=1234&Digits=1234",
        "empty-pairs": b"\0a=1&&b=2&&&c&=d&e==f",
        "plus-and-case": b"\0Body=a+b%2bc%2Bd%e2%80%99&x%3D=%26",
        "bad-percent": b"\0a=%zz",
        "short-percent": b"\0a=1&b=%4",
        "percent-at-key": b"\0%=1",
        "many": b"\0" + many,
        "room-3": bytes([203]) + b"a=1&b=2&c=3&d=4",
        "room-0": bytes([200]) + b"a",
        "empty": b"\0",
    }


def signature_seeds():
    import hashlib
    import hmac

    P = (b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234"
         b"&From=%2B14158675309&To=%2B18005551212")

    def seed(url, body, token=b"12345", ws=False, sig=None, pos=5, x=1):
        flags = (1 if ws else 0) | (2 if sig is not None else 0)
        return (bytes([flags, pos, x, len(token)]) + token
                + bytes([len(url)]) + url + body + (sig or b""))

    def sign(url, params, token=b"12345"):
        s = url + b"".join(k + v for k, v in sorted(set(params)))
        return base64.b64encode(hmac.new(token, s, hashlib.sha1).digest())

    u1 = b"https://mycompany.com/myapp.php?foo=1&bar=2"
    pairs = [(b"CallSid", b"CA1234567890ABCDE"), (b"Caller", b"+14158675309"),
             (b"Digits", b"1234"), (b"From", b"+14158675309"),
             (b"To", b"+18005551212")]
    return {
        "vector-1": seed(u1, P, sig=b"RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        "vector-2-port-added": seed(u1, P, sig=b"kvajT1Ptam85bY51eRf/AJRuM3w="),
        "vector-3-port-kept": seed(b"http://mycompany.com:1234/myapp.php"
                                   b"?foo=1&bar=2", P,
                                   sig=b"Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        "vector-1-https-port": seed(b"https://mycompany.com:1234/myapp.php"
                                    b"?foo=1&bar=2", P,
                                    sig=b"RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        "vector-10-repeated": seed(u1, b"Sid=CA123&SidAccount=AC123"
                                   b"&Digits=5678&Digits=1234&Digits=1234",
                                   sig=b"IK+Dwps556ElfBT0I3Rgjkr1wJU="),
        "wss-slash": seed(b"wss://example.com/media", b"", ws=True,
                          sig=b"T+WBXwUXC0/CyoZ1DA+p9ilZORs="),
        "ipv6": seed(b"https://[2001:db8::1]:8443/voice", P,
                     sig=sign(b"https://[2001:db8::1]/voice", pairs)),
        "ipv6-no-port": seed(b"http://[::1]/a", b"a=1", x=0x7f),
        "no-scheme": seed(b"example.com/voice", P),
        "long-token": seed(u1, P, token=b"t" * 80,
                           sig=sign(u1, pairs, b"t" * 80)),
        "empty-url": seed(b"", b"a=1&b=2"),
        "wrong-sig": seed(u1, P, sig=b"RSOYDt4T1cUTdK1PDd93/VVr8B8A"),
        "bad-form": seed(u1, b"a=%zz"),
    }


def api_args_seeds():
    threads, calls, customers = b"\0", b"\1", b"\2"
    sid = CALL.encode()
    return {
        "paging": threads + b"threads?page=2&limit=10",
        "type": threads + b"threads?type=whatsapp",
        "status": threads + b"calls?status=completed&page=3",
        "q-like": threads + b"crm/customers?q=50%25_off%5C&limit=100",
        "q-utf8": customers + b"crm/customers?q=%D7%A9%D7%9C%D7%95%D7%9D",
        "q-nul": customers + b"?q=a%00b",
        "q-bad-utf8": customers + b"?q=%C0%AF",
        "q-long": customers + b"?q=" + b"x" * 101,
        "page-zero": threads + b"?page=0",
        "page-max": threads + b"?page=1000000&limit=100",
        "page-over": threads + b"?page=1000001",
        "limit-over": calls + b"?limit=101",
        "limit-sign": calls + b"?limit=+5",
        "page-twice": threads + b"?page=1&page=2",
        "page-twice-alike": threads + b"?page=1&page=1",
        "type-upper": threads + b"?type=WhatsApp",
        "filter-twice": calls + b"?status=a&status=b",
        "messages": threads + b"threads/42/messages?page=2",
        "messages-bad-id": threads + b"threads/4x/messages",
        "messages-long-id": threads + b"threads/1234567890123456789/messages",
        "call": threads + b"calls/" + sid,
        "call-short": threads + b"calls/" + sid[:-1],
        "audio": threads + b"calls/" + sid + b"/recordings/7/audio",
        "audio-bad": threads + b"calls/" + sid + b"/recordings//audio",
        "live": threads + b"live",
        "send": threads + b"whatsapp/send",
        "unknown": threads + b"threads/",
        "empty": customers,
    }


def wa_body_seeds():
    def body(**kw):
        return json.dumps(kw, ensure_ascii=False).encode()

    msg = {"from": "+972541112222", "provider_msg_id": "3EB0A1B2C3",
           "text": "\u05e9\u05dc\u05d5\u05dd", "name": "Dana",
           "timestamp": 1718000000}
    return {
        "baileys": body(**msg),
        "baileys-whatsapp-prefix": body(**dict(msg, **{"from": "whatsapp:+1555"})),
        "baileys-media": body(**dict(msg, text=None,
                                     media_url="https://x/p.jpg",
                                     media_type="image/jpeg")),
        "baileys-no-text": body(**dict(msg, text="")),
        "baileys-ftp": body(**dict(msg, media_url="ftp://x/p.jpg")),
        "baileys-space-id": body(**dict(msg, provider_msg_id="a b")),
        "baileys-from-zero": body(**dict(msg, **{"from": "+0123"})),
        "send": body(to="+972541112222", text="hi", provider="auto"),
        "send-media": body(to="+15551234567", media_url="http://x/a.png",
                           provider="baileys"),
        "send-no-plus": body(to="15551234567", text="hi"),
        "twice": b'{"to":"+1555","to":"+1666","text":"x"}',
        "key-with-nul": b'{"to":"+15554567","media_url":"http://x/a.",'
                        b'"provider\\u0000":"leys"}',
        "escaped": b'{"to":"\\u002b15551234567","text":"a\\"b\\u00e9"}',
        "deep": b'{"to":"+1555","x":' + b"[" * 20 + b"]" * 20 + b"}",
        "not-object": b'["to","+1555"]',
        "empty": b"",
    }


def media_upgrade_seeds():
    tok = b"0123456789abcdef0123456789abcdef"
    path = b"/ws/twilio-media/" + CALL.encode() + b"/" + tok

    def seed(header, p):
        return bytes([len(header)]) + header + p

    return {
        "upgrade": seed(b"Upgrade", path),
        "keep-alive-upgrade": seed(b"keep-alive, Upgrade", path + b"/"),
        "websocket-case": seed(b" WebSocket ,x", b"/ws/twilio-media"),
        "tab": seed(b"websocket\t", b"/ws/twilio-media/"),
        "nul": seed(b"Upgrade\0", path),
        "commas": seed(b",,upgrade,,", path + b"//"),
        "bad-sid": seed(b"upgrade", b"/ws/CX" + CALL.encode()[2:] + b"/" + tok),
        "slash-in-token": seed(b"", b"/ws/" + CALL.encode() + b"/" + tok[:-1] + b"/"),
        "short": seed(b"u", b"/" + CALL.encode() + b"/" + tok[:-1]),
        "bare": seed(b"", b"/" + CALL.encode() + b"/" + tok),
        "empty": b"\0",
    }


def wa_form_seeds():
    from urllib.parse import urlencode
    sm = "SM" + "5a1b2c3d4e5f60718293a4b5c6d7e8f9"
    mm = "MM" + "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
    acct = "AC" + "1" * 32
    # the keys and order of real inbound webhooks (../shared/twilio-facts.md 7)
    def inbound(sid=sm, body="Hello world & more", media=(), **kw):
        f = [("SmsMessageSid", sid), ("NumMedia", str(len(media))),
             ("ProfileName", "Zo\u00eb"), ("MessageType",
                                           "image" if media else "text"),
             ("SmsSid", sid), ("WaId", "972541112222"),
             ("SmsStatus", "received"), ("Body", body),
             ("To", "whatsapp:+14155238886"), ("NumSegments", "1"),
             ("ReferralNumMedia", "0"), ("MessageSid", sid),
             ("AccountSid", acct), ("From", "whatsapp:+972541112222"),
             ("ApiVersion", "2010-04-01")]
        for i, (url, ctype) in enumerate(media):
            f += [("MediaContentType%d" % i, ctype), ("MediaUrl%d" % i, url)]
        d = dict(f)
        d.update(kw)
        f = [(k, d[k]) for k, _ in f] + [(k, v) for k, v in kw.items()
                                          if k not in dict(f)]
        return urlencode([(k, v) for k, v in f if v is not None]).encode()

    def status(st, sid=sm, **kw):
        f = [("ChannelPrefix", "whatsapp"), ("ApiVersion", "2010-04-01"),
             ("MessageStatus", st), ("SmsSid", sid), ("SmsStatus", st),
             ("ChannelInstallSid", "XE" + "2" * 32),
             ("To", "whatsapp:+972541112222"),
             ("From", "whatsapp:+14155238886"), ("MessageSid", sid),
             ("StructuredMessage", "false"), ("AccountSid", acct),
             ("ChannelToAddress", "+97254111XXXX")]
        f += list(kw.items())
        return urlencode([(k, v) for k, v in f if v is not None]).encode()

    img = ("https://api.twilio.com/2010-04-01/Accounts/%s/Messages/%s/Media/"
           "ME%s" % (acct, mm, "3" * 32), "image/jpeg")
    ten = [(img[0][:-1] + "%x" % i, "image/png") for i in range(10)]
    return {
        "text": b"\0" + inbound(),
        "hebrew": b"\0" + inbound(body="\u05e9\u05dc\u05d5\u05dd"),
        "empty-body": b"\0" + inbound(body=""),
        "image": b"\0" + inbound(sid=mm, body="", media=[img]),
        "ten-media": b"\0" + inbound(sid=mm, media=ten),
        "location": b"\0" + inbound(body="", Latitude="32.0853",
                                     Longitude="34.7818",
                                     Address="Tel Aviv", Label="Home"),
        "button": b"\0" + inbound(body="Yes", ButtonText="Yes",
                                   ButtonPayload="confirm-1",
                                   OriginalRepliedMessageSid=sm),
        "upper-prefix": b"\0" + inbound(From="WhatsApp:+972541112222"),
        "no-whatsapp-prefix": b"\0" + inbound(From="+972541112222"),
        "from-zero": b"\0" + inbound(From="whatsapp:+0541112222"),
        "no-to": b"\0" + inbound(To=None),
        "bad-sid": b"\0" + inbound(sid="SM" + "g" * 32),
        "call-sid": b"\0" + inbound(sid="CA" + "0" * 32),
        "no-sid": b"\0" + inbound(sid=None),
        "two-sids": b"\0" + inbound() + b"&MessageSid=" + mm.encode(),
        "two-bodies": b"\0" + inbound() + b"&Body=other",
        "latin1-body": b"\0" + inbound().replace(b"Hello", b"H%E9llo"),
        "nul-body": b"\0" + inbound().replace(b"Hello", b"He%00llo"),
        "num-media-11": b"\0" + inbound(NumMedia="11"),
        "num-media-010": b"\0" + inbound(sid=mm, media=ten, NumMedia="010"),
        "num-media-huge": b"\0" + inbound(NumMedia="99999999999999999999"),
        "num-media-sign": b"\0" + inbound(NumMedia="+1"),
        "num-media-empty": b"\0" + inbound(NumMedia=""),
        "missing-url": b"\0" + inbound(NumMedia="1"),
        "long-url": b"\0" + inbound(sid=mm, media=[("https://x/" + "a" * 2039,
                                                     "image/png")]),
        "long-type": b"\0" + inbound(sid=mm, media=[(img[0], "x/" + "y" * 127)]),
        "two-types": b"\0" + inbound(sid=mm, media=[img])
                     + b"&MediaContentType0=image%2Fpng",
        "long-name": b"\0" + inbound(ProfileName="n" * 257),
        "sent": b"\0" + status("sent"),
        "delivered": b"\0" + status("delivered", EventType="DELIVERED"),
        "read": b"\0" + status("read", EventType="READ"),
        "failed": b"\0" + status("failed", ErrorCode="63016",
                                  ErrorMessage="Outside messaging window"),
        "undelivered": b"\0" + status("undelivered", ErrorCode="63024"),
        "sms-status-only": b"\0" + status(None, SmsStatus="queued"),
        "status-capitals": b"\0" + status("DELIVERED"),
        "status-dash": b"\0" + status("not-yet-known", ErrorCode=""),
        "status-long": b"\0" + status("x" * 33),
        "error-code-letters": b"\0" + status("failed", ErrorCode="12ab"),
        "error-code-long": b"\0" + status("failed", ErrorCode="12345678901"),
        "no-status": b"\0" + status(None, SmsStatus=None),
        # made bodies: flags, then the bytes they are made of
        "made-media": bytes([0, 3, 1, 2, 11, 9]) + bytes(range(40, 140)),
        "made-faults": bytes([0xff, 12, 1, 5, 11, 9]) + bytes(range(200)),
        "bad-percent": b"\0" + inbound() + b"&x=%g1",
        "empty": b"\0",
    }


def hide_token_seeds():
    tok = b"0123456789abcdef0123456789abcdef"
    path = b"/ws/twilio-media/" + CALL.encode() + b"/" + tok

    def seed(line, span_at, span_len, line_at=0, cut=0, split=None):
        if split is None:
            split = len(line) & 0xfe
        return (struct.pack(">HHHBB", line_at, cut, span_at, span_len,
                            split & 0xff) + line)

    line = b"GET " + path + b" HTTP/1.1"
    at = line.index(tok)
    query = b"GET " + path + b"?a=" + tok + b" HTTP/1.1"
    return {
        "request-line": seed(line, at, 32),
        "request-line-slash": seed(b"GET " + path + b"/ HTTP/1.1", at, 32,
                                   split=17),
        "token-in-query": seed(query, at, 32, split=16),
        "token-at-start": seed(line, 0, 32),
        "token-at-end": seed(line, len(line) - 32, 32),
        "span-straddles-end": seed(line, len(line) - 8, 32, cut=4),
        "span-before-line": seed(line, 2, 32, line_at=8),
        "empty-span": seed(line, at, 0),
        "short-span": seed(line, at, 2),
        "whole-line": seed(tok, 0, 32),
        "empty": bytes(8),
    }


def service_reply_seeds():
    sm = "SM" + "0123456789abcdef0123456789abcdef"
    return {
        "twilio-queued": dumps({"sid": sm, "status": "queued",
                                "error_code": None, "error_message": None,
                                "num_segments": "1", "price": None,
                                "subresource_uris": {"media": "/Media.json"}}),
        "twilio-refused": dumps({"code": 21211, "message":
                                 "The 'To' number +1555 is not a valid "
                                 "phone number.", "more_info":
                                 "https://www.twilio.com/docs/errors/21211",
                                 "status": 400}),
        "twilio-code-null": dumps({"sid": sm, "code": None, "message": None}),
        "bridge-sent": dumps({"provider_msg_id": "3EB0C767D26A1B2C",
                              "status": "sent"}),
        "bridge-error": dumps({"error": "not connected to WhatsApp"}),
        "transcript": json.dumps({"text": "\u05e9\u05dc\u05d5\u05dd, "
                                  "I need a plumber.", "language": "he",
                                  "duration": 4.5, "segments":
                                  [{"id": 0, "text": "x"}]},
                                 ensure_ascii=False).encode(),
        "transcript-escapes": b'{"text":"a\\"b\\\\c\\n\\ud83d\\udc4b"}',
        "transcript-null": b'{"text":null}',
        "code-float": b'{"sid":"SM1","code":1.5}',
        "code-huge": b'{"code":9223372036854775808}',
        "code-llong-min": b'{"code":-9223372036854775808}',
        "key-with-nul": b'{"code\\u0000x":2,"sid\\u0000":"SM1"}',
        "sid-twice": b'{"sid":"SM1","sid":"SM2"}',
        "sid-too-long": dumps({"sid": "S" * 129}),
        "nul": b'{"message":"a\\u0000b","text":"a\\u0000b"}',
        "cut-after-sid": ('{"sid":"%s","sta' % sm).encode(),
        "array": b'[{"sid":"SM1"}]',
        "empty": b"",
    }


def write(sub, seeds):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return len(seeds), sum(len(v) for v in seeds.values())


def main():
    for sub, seeds in (("ws_frames", ws_seeds()),
                       ("twilio_event", twilio_seeds()),
                       ("spool_record", spool_seeds()),
                       ("json_fields", json_seeds()),
                       ("jwt", jwt_seeds()),
                       ("form", form_seeds()),
                       ("signature", signature_seeds()),
                       ("api_args", api_args_seeds()),
                       ("wa_body", wa_body_seeds()),
                       ("media_upgrade", media_upgrade_seeds()),
                       ("wa_form", wa_form_seeds()),
                       ("hide_token", hide_token_seeds()),
                       ("service_reply", service_reply_seeds())):
        n, size = write(sub, seeds)
        print("corpus/%s: %d files, %d bytes" % (sub, n, size))


if __name__ == "__main__":
    main()
