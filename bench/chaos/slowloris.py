#!/usr/bin/python3
"""bench/chaos/slowloris.py: slow clients for bench/chaos/run.

    slowloris.py PORT CONNS [GAP_S]

Keeps CONNS connections open until SIGTERM, each dribbling a request one
piece every GAP_S seconds: half of them the headers of a webhook a line at
a time (never the blank line), half a signed-looking webhook's headers
whole and then its body a byte at a time (a Content-Length it never
reaches).  A connection the server closes is opened again.  Prints one
line at the end: "SLOWLORIS opened= closed_by_server= held_max=".
"""

import asyncio
import signal
import sys

stats = {"opened": 0, "closed_by_server": 0, "held": 0, "held_max": 0}


async def one(port, n, gap, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(gap)
            continue
        stats["opened"] += 1
        stats["held"] += 1
        stats["held_max"] = max(stats["held_max"], stats["held"])
        if n % 2:
            pieces = [b"POST /webhook/incoming_call HTTP/1.1\r\n"] + \
                [b"X-Slow-%d: %s\r\n" % (i, b"a" * 20) for i in range(10 ** 4)]
        else:
            body = b"CallSid=CA" + b"0" * 32 + b"&AccountSid=AC" + b"1" * 32
            pieces = [b"POST /webhook/incoming_call HTTP/1.1\r\n"
                      b"Host: voice.example.com\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(body) * 4)] + \
                [body[i:i + 1] for i in range(len(body))] * 4
        try:
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                try:
                    got = await asyncio.wait_for(reader.read(4096), gap)
                except asyncio.TimeoutError:
                    got = None
                if got is not None:          # an answer or EOF: closed
                    stats["closed_by_server"] += 1
                    break
                if stop.is_set():
                    break
        except (ConnectionError, OSError):
            stats["closed_by_server"] += 1
        stats["held"] -= 1
        writer.close()


async def main():
    port, conns = int(sys.argv[1]), int(sys.argv[2])
    gap = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks = []
    for n in range(conns):
        tasks.append(asyncio.ensure_future(one(port, n, gap, stop)))
        await asyncio.sleep(0.002)
    await stop.wait()
    await asyncio.wait(tasks, timeout=gap + 2)
    print("SLOWLORIS opened=%d closed_by_server=%d held_max=%d"
          % (stats["opened"], stats["closed_by_server"], stats["held_max"]),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main())
