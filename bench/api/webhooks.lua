-- wrk script for bench/api/run, part 2's burst: sends pre-signed Baileys
-- webhooks (gen-webhooks.pl ... lua), each once, as bench/webhooks/wrk.lua
-- does for Twilio's.
--
-- usage: wrk -tT -cC ... -s webhooks.lua URL -- DATA.lua T C
--
-- Thread k of T sends requests k, k+T, k+2T, ... of DATA.lua to URL's
-- path.  The run ends at -d or when the data is used up, whichever comes
-- first: the thread that runs out stops itself and sends wrk SIGINT, which
-- ends wrk's wait early and keeps its duration and requests/s exact.  The
-- last C requests are spare, for the requests wrk asks for in the same
-- event loop turn; only beyond them would a message be sent twice
-- ("wrapped").
--
-- done() prints one line for the runner:
--   BENCH requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. max_us=..
--         non2xx=.. connect=.. read=.. write=.. timeout=.. sent=..
--         wrapped=.. exhausted=0|1

local ffi = require("ffi")
ffi.cdef [[
int kill(int pid, int sig);
int getpid(void);
]]

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

sent, wrapped, exhausted = 0, 0, 0
local reqs, n, step, limit, pos

function init(args)
   local data = dofile(args[1])
   step = tonumber(args[2] or "1")
   n = #data
   limit = n - tonumber(args[3] or "0")
   if limit < 1 then limit = n end

   local head = "POST " .. wrk.path
   reqs = {}
   for i = 1, n do
      reqs[i] = head .. data[i]
   end
   data = nil
   collectgarbage()

   pos = id
end

function request()
   if pos >= limit and exhausted == 0 then
      exhausted = 1
      wrk.thread:stop()
      ffi.C.kill(ffi.C.getpid(), 2)
   end
   if pos >= n then
      wrapped = wrapped + 1
   end
   local r = reqs[pos % n + 1]
   pos = pos + step
   sent = sent + 1
   return r
end

function done(summary, latency, requests)
   local total_sent, total_wrapped, any_exhausted = 0, 0, 0
   for _, t in ipairs(threads) do
      total_sent = total_sent + t:get("sent")
      total_wrapped = total_wrapped + t:get("wrapped")
      any_exhausted = math.max(any_exhausted, t:get("exhausted"))
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d " ..
      "max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
      "sent=%d wrapped=%d exhausted=%d\n",
      summary.requests, summary.duration,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout,
      total_sent, total_wrapped, any_exhausted))
end
