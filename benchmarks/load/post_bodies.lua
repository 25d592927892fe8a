-- wrk script: POST pre-encoded bodies in turn; print a JSON summary at the end.
-- Environment: BODIES (a file listing one body file per line), AUTH (header value or empty).
local bodies = {}
local counter = 0
local statuses = {}

local list = assert(io.open(os.getenv("BODIES"), "r"))
for path in list:lines() do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
list:close()

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

function setup(thread)
  thread:set("offset", counter * 7)
  counter = counter + 1
end

function init(args)
  k = offset or 0
end

function request()
  k = k + 1
  return wrk.format(nil, nil, nil, bodies[(k % #bodies) + 1])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, non2xx, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
