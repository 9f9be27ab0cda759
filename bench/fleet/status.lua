-- wrk script of bench/fleet.sh: counts every response that is not 2xx (wrk's own "Non-2xx or 3xx"
-- line lets 3xx pass) and prints one line at the end that fleet.sh adds up:
--   FLEET requests=N non2xx=N connect=N read=N write=N timeout=N
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0 -- global: done() reads it from each thread with thread:get()
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format("FLEET requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, bad, e.connect, e.read, e.write, e.timeout))
end
