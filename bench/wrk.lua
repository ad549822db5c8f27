-- wrk script for bench/wrk.py: one POST per pre-minted token (replay protection is on), the
-- threads taking disjoint tokens; prints one RESULT line for the Python side to read.
-- Arguments after "--": tokens file, body file, path, thread count.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  local file = io.open(args[2], "rb")
  body = file:read("*a")
  file:close()
  path = args[3]
  step = tonumber(args[4])
  index = id + 1
end

function request()
  local token = tokens[index] or "exhausted"
  index = index + step
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
