-- wrk script for bench_server.py's fixed-rate latency: POST a json increment(1), each
-- connection pausing DELAY_MS before each request, so N connections offer about
-- N * 1000 / DELAY_MS requests/s (a moderate load, far below saturation); one JSON line at
-- the end with the achieved rate and the latency percentiles.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")

wrk.method = "POST"
wrk.body = '{"args":[1]}'
wrk.headers["x-rivet-encoding"] = "json"
wrk.headers["content-type"] = "application/json"

function delay()
  return delay_ms
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d}\n',
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.status + e.timeout))
end
