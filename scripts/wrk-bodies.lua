-- scripts/wrk-bodies.lua — wrk (https://github.com/wg/wrk) posts prepared
-- request bodies: one JSON object per line of the file $BODIES (made by
-- `loadgen -bodies-out`), each of wrk's threads its own share of them,
-- formatted into requests before the clock starts and sent in turn.
--
-- Environment: BODIES (the file), WRK_PATH (default /v1/events), WRK_KEY
-- (an API key, sent as Authorization: Bearer; none if empty) and
-- WRK_THREADS (wrk's -t, default 2).
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  local path = os.getenv("WRK_PATH") or "/v1/events"
  local headers = { ["Content-Type"] = "application/json" }
  local key = os.getenv("WRK_KEY")
  if key and key ~= "" then
    headers["Authorization"] = "Bearer " .. key
  end
  reqs = {}
  local i = 0
  for line in io.lines(os.getenv("BODIES")) do
    if i % nthreads == tid then
      reqs[#reqs + 1] = wrk.format("POST", path, headers, line)
    end
    i = i + 1
  end
  if #reqs == 0 then
    error("no request bodies in " .. tostring(os.getenv("BODIES")))
  end
  n = 0
end

function request()
  n = n + 1
  if n > #reqs then
    n = 1
  end
  return reqs[n]
end
