-- wrk: keep-alive requests (GET, or BENCH_METHOD with BENCH_BODY) in absolute-form (through a forward proxy) or origin-form (direct), with optional
-- Proxy-Authorization. Prints one JSON line at the end for bench/run.ts to read.
local target = os.getenv("BENCH_TARGET") or "/"
local auth = os.getenv("BENCH_AUTH")
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local req

init = function(args)
  local headers = {}
  if auth and auth ~= "" then headers["Proxy-Authorization"] = auth end
  if body and body ~= "" then
    headers["Content-Type"] = "application/json"
  else
    body = nil
  end
  req = wrk.format(method, target, headers, body)
end

request = function()
  return req
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
