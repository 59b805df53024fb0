-- Shared helpers for the wrk scripts in bench/ (loaded with dofile).
-- Each wrk thread has its own Lua state; `non200` and `requests_seen` are
-- per-thread globals that done() in the main state sums over all threads.

local M = {}

function M.urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function M.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then
    if default == nil then error(name .. " must be set") end
    return default
  end
  return v
end

-- Client authentication: client_secret_post (form fields), what both servers
-- are configured for.
function M.client_auth()
  return "client_id=" .. M.urlencode(M.env("BENCH_CLIENT_ID", "bench")) ..
         "&client_secret=" .. M.urlencode(M.env("BENCH_CLIENT_SECRET"))
end

M.headers = { ["Content-Type"] = "application/x-www-form-urlencoded",
              ["Accept"] = "application/json" }

M.threads = {}

function M.setup(thread)
  thread:set("id", #M.threads)
  table.insert(M.threads, thread)
end

-- One machine-readable line for run.sh, after wrk's own --latency report.
function M.done(label, summary, latency)
  local non200, bad_body = 0, 0
  for _, t in ipairs(M.threads) do
    non200 = non200 + (t:get("non200") or 0)
    bad_body = bad_body + (t:get("bad_body") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT grant=%s requests=%d duration_s=%.2f rps=%.1f " ..
    "p50_ms=%.2f p75_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "non200=%d bad_body=%d sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d\n",
    label, summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(75) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, non200, bad_body,
    e.connect, e.read, e.write, e.timeout))
end

return M
