-- The one wrk script bench/run.sh uses for every run. Arguments after `--`, each KEY=VALUE:
--   body=N        POST an N-byte body (the echo scenario); without it, GET
--   interval=US   open loop ("paced"): every connection sends one request each US microseconds
--                 on a fixed schedule, whatever the server does. Run it with -t equal to -c, so
--                 each wrk thread owns one connection and a response always answers the request
--                 its thread sent last.
-- done() prints one line, "BENCH_JSON {...}", that run.sh keeps and report.py reads.
--
-- Why paced: a closed loop (wrk's normal mode) waits for a response before sending the next
-- request, so a server that stalls is asked less while it stalls and its tail latency looks
-- better than any real client would see (coordinated omission). Debian's wrk is not wrk2 and
-- has no -R, so the schedule lives here: delay() holds each request until its slot, and latency
-- runs from the slot, not from the (late) send, whenever the server made us late.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

-- Main state: the threads, so done() can collect what each one measured.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Thread state (paced runs only).
local interval, next_slot, start
samples = nil -- global: done() reads it from each thread with thread:get()

local function paced_delay()
  local now = now_us()
  next_slot = next_slot + interval
  if now < next_slot then
    start = nil -- on time: the clock starts when the request really leaves (request())
    return math.floor((next_slot - now) / 1000)
  end
  start = next_slot -- late because the server was slow: the wait counts against it
  return 0
end

local function paced_request()
  if start == nil then start = now_us() end
  return wrk.format()
end

local function paced_response(status, headers, body)
  if start ~= nil then
    samples[#samples + 1] = now_us() - start
    start = nil
  end
end

function init(args)
  local opts = {}
  for i = 1, #args do
    local k, v = args[i]:match("^(%w+)=(.*)$")
    if k then opts[k] = v end
  end
  if opts.body then
    wrk.method = "POST"
    wrk.body = string.rep("x", tonumber(opts.body))
    wrk.headers["Content-Type"] = "application/octet-stream"
  end
  if opts.interval then
    interval = tonumber(opts.interval)
    samples = {}
    -- Spread the connections' schedules over one interval so they do not fire together
    -- (each thread has its own Lua state: seed from this state's table address).
    math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
    next_slot = now_us() + math.random() * interval - interval
    delay, request, response = paced_delay, paced_request, paced_response
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.ceil(#sorted * p / 100))
  return sorted[math.min(i, #sorted)]
end

local PERCENTILES = { 50, 75, 90, 99, 99.9, 99.99 }

local function percentile_fields(get)
  local out = {}
  for _, p in ipairs(PERCENTILES) do
    out[#out + 1] = string.format('"p%s":%.1f', tostring(p):gsub("%.", "_"), get(p))
  end
  return table.concat(out, ",")
end

function done(summary, latency, requests)
  local e = summary.errors
  local paced = "null"
  local all = {}
  for _, t in ipairs(threads) do
    local s = t:get("samples")
    if s then for _, v in ipairs(s) do all[#all + 1] = v end end
  end
  if #all > 0 then
    table.sort(all)
    paced = string.format('{"count":%d,%s,"max":%.1f}', #all,
      percentile_fields(function(p) return percentile(all, p) end), all[#all])
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{%s,"mean":%.1f,"max":%.1f},"paced_us":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    percentile_fields(function(p) return latency:percentile(p) end), latency.mean, latency.max, paced))
end
