-- wrk script: every connection waits the given milliseconds between requests (wrk ... URL -- MS).
-- Steady keep-alive traffic across a reload or a scale-up without wrk and the server taking both cores.
local pause = 10

function init(args)
  if args[1] then pause = tonumber(args[1]) end
end

function delay()
  return pause
end
