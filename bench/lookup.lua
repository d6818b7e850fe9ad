-- wrk script: GET /v1/$WRK_API/<random key in 0..$WRK_KEYS-1> (the synthetic APIs of
-- edge-cache's `fill` example; every key exists). With $WRK_DELAY_MS each connection waits that
-- long between requests, so the offered load is fixed (connections / delay) instead of maximal.
-- With $WRK_BATCH = n, POSTs /v1/$WRK_API/_batch of n random keys instead. With $WRK_ZIPF = s,
-- single keys follow Zipf(s) (key k - 1 with probability proportional to k^-s) instead of uniform.
-- With $WRK_HEALTHZ = 1, each request is GET /healthz?key=<the same draw>: the service's HTTP
-- ceiling measured with the same client work per request (a Lua call, a draw, a formatted path).
-- Prints one JSON line of results when done.
local api = os.getenv("WRK_API")
local keys = tonumber(os.getenv("WRK_KEYS"))
local batch = tonumber(os.getenv("WRK_BATCH") or "0")
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local zipf = tonumber(os.getenv("WRK_ZIPF") or "0")
local healthz = os.getenv("WRK_HEALTHZ") == "1"

-- Zipf(s) over 1..n by rejection-inversion (Hörmann and Derflinger 1996; the form of Apache
-- Commons' RejectionInversionZipfSampler): O(1) a draw, no table of n weights.
local function zipf_sampler(n, s)
  local function h(x) return math.exp(-s * math.log(x)) end
  local function h_integral(x) return (math.exp((1 - s) * math.log(x)) - 1) / (1 - s) end
  local function h_integral_inverse(y) return math.exp(math.log(1 + (1 - s) * y) / (1 - s)) end
  local h_x1 = h_integral(1.5) - 1
  local h_n = h_integral(n + 0.5)
  local squeeze = 2 - h_integral_inverse(h_integral(2.5) - h(2))
  return function()
    while true do
      local u = h_n + math.random() * (h_x1 - h_n)
      local x = h_integral_inverse(u)
      local k = math.floor(x + 0.5)
      if k < 1 then k = 1 elseif k > n then k = n end
      if k - x <= squeeze or u >= h_integral(k + 0.5) - h(k) then
        return k
      end
    end
  end
end

local next_key
if zipf > 0 then
  local draw = zipf_sampler(keys, zipf)
  next_key = function() return draw() - 1 end
else
  next_key = function() return math.random(0, keys - 1) end
end

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
  if healthz then
    return wrk.format("GET", "/healthz?key=" .. next_key())
  end
  return wrk.format("GET", "/v1/" .. api .. "/" .. next_key())
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
