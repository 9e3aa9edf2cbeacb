#!/usr/bin/python3
"""bench/hashflood's client: `client.py PORT FILL_FILE PROBE_FILE ROUNDS`.
Registers every CallSid of FILL_FILE with incoming_call, then times
call_status for each CallSid of PROBE_FILE (absent from the zone: a lookup
walks its whole probe sequence, under the zone's lock), ROUNDS times, on
one keep-alive connection.  Prints "fill_s", then one "lookup_us" line per
round: the median and p99 of the request times, in microseconds."""

import http.client
import sys
import time


def post(conn, path, sid, extra=""):
    body = "CallSid=%s&AccountSid=AC%s%s" % (sid, "1" * 32, extra)
    conn.request("POST", path, body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("hashflood: %s answered %d" % (path, r.status))


def main(port, fill, probe, rounds):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    fill = open(fill).read().split()
    probe = open(probe).read().split()
    t = time.perf_counter()
    for sid in fill:
        post(conn, "/webhook/incoming_call", sid)
    print("fill_s %.3f" % (time.perf_counter() - t))
    for _ in range(rounds):
        times = []
        for sid in probe:
            t = time.perf_counter()
            post(conn, "/webhook/call_status", sid, "&CallStatus=ringing")
            times.append(time.perf_counter() - t)
        times.sort()
        print("lookup_us %.1f %.1f" % (1e6 * times[len(times) // 2],
                                      1e6 * times[int(len(times) * 0.99)]))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
