-- wrk script for TechEmpower's plaintext test: each connection sends DEPTH requests at once
-- (HTTP/1.1 pipelining) and wrk counts every response. Usage: wrk ... -s pipeline.lua URL -- 16
local depth
function init(args)
  depth = tonumber(args[1]) or 16
  local requests = {}
  for i = 1, depth do requests[i] = wrk.format() end
  pipelined = table.concat(requests)
end

function request()
  return pipelined
end
