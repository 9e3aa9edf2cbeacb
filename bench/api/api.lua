-- wrk script for bench/api/run, part 1: GET requests to the CRM API, each
-- with a varied URL and the bearer token of the business it reads, drawn
-- as sql.pl's pgbench scripts draw their parameters (see there).
--
-- usage: wrk ... -s api.lua http://127.0.0.1:PORT -- PARAMS.lua ENDPOINT TOKEN1 .. TOKENB
--
-- ENDPOINT: threads    /api/threads?page=P&limit=25         business b, P in 1..pages
--           messages   /api/threads/T/messages?limit=50      T in 1..threads, its business
--           calls      /api/calls?page=P&status=completed    business b, P in 1..pages
--           call       /api/calls/CA<32 hex digits of n>     n in 1..calls, its business
--           customers  /api/crm/customers?q=Q                business b, Q one of PARAMS' q
--           mix        each request one of the five above, uniformly
--           floor      /floor (a static copy of an API answer, same headers)
-- b is uniform in 1..businesses; thread t and call n belong to business
-- 1 + (t - 1) % businesses (seed.sql's layout).
--
-- done() prints one line for the runner:
--   BENCH requests=.. duration_us=.. rps=.. p50_us=.. p90_us=..
--         p99_us=.. p999_us=.. max_us=.. non2xx=.. connect=.. read=..
--         write=.. timeout=.. bytes=..
-- (non2xx is wrk's "Non-2xx or 3xx responses": statuses above 399)

local threads_ = {}

function setup(thread)
   thread:set("id", #threads_)
   table.insert(threads_, thread)
end

local P, endpoint, headers, B
local kinds = { "threads", "messages", "calls", "call", "customers" }

function init(args)
   P = dofile(args[1])
   endpoint = args[2]
   B = P.businesses
   headers = {}
   for b = 1, B do
      headers[b] = { Authorization = "Bearer " .. args[2 + b] }
   end
   math.randomseed(os.time() * 1000 + id)
end

local function req(kind)
   local b, path
   if kind == "threads" then
      b = math.random(B)
      path = "/api/threads?page=" .. math.random(P.pages) .. "&limit=25"
   elseif kind == "messages" then
      local t = math.random(P.threads)
      b = 1 + (t - 1) % B
      path = "/api/threads/" .. t .. "/messages?limit=50"
   elseif kind == "calls" then
      b = math.random(B)
      path = "/api/calls?page=" .. math.random(P.pages) .. "&status=completed"
   elseif kind == "call" then
      local n = math.random(P.calls)
      b = 1 + (n - 1) % B
      path = string.format("/api/calls/CA%032x", n)
   elseif kind == "customers" then
      b = math.random(B)
      path = "/api/crm/customers?q=" .. P.q[math.random(#P.q)]
   elseif kind == "floor" then
      b = math.random(B)
      path = "/floor"
   else
      error("api.lua: no endpoint " .. tostring(kind))
   end
   return wrk.format("GET", path, headers[b])
end

function request()
   if endpoint == "mix" then
      return req(kinds[math.random(#kinds)])
   end
   return req(endpoint)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d " ..
      "p90_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d connect=%d " ..
      "read=%d write=%d timeout=%d bytes=%d\n",
      summary.requests, summary.duration,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, e.status, e.connect, e.read,
      e.write, e.timeout, summary.bytes))
end
