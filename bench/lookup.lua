-- wrk script: GET /v1/$WRK_API/<random key in 0..$WRK_KEYS-1> (the synthetic APIs of
-- edge-cache's `fill` example; every key exists). With $WRK_DELAY_MS each connection waits that
-- long between requests, so the offered load is fixed (connections / delay) instead of maximal.
-- With $WRK_BATCH = n, POSTs /v1/$WRK_API/_batch of n random keys instead.
-- Prints one JSON line of results when done.
local api = os.getenv("WRK_API")
local keys = tonumber(os.getenv("WRK_KEYS"))
local batch = tonumber(os.getenv("WRK_BATCH") or "0")
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function setup(thread)
  thread:set("seed", math.random(1, 2 ^ 30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  if batch > 0 then
    local parts = {}
    for i = 1, batch do
      parts[i] = "[" .. math.random(0, keys - 1) .. "]"
    end
    local body = '{"keys":[' .. table.concat(parts, ",") .. ']}'
    return wrk.format("POST", "/v1/" .. api .. "/_batch", { ["Content-Type"] = "application/json" }, body)
  end
  return wrk.format("GET", "/v1/" .. api .. "/" .. math.random(0, keys - 1))
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"errors":%d,"non2xx":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
