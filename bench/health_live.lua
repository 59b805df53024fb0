-- wrk script: GET the URL given to wrk (Tessera's /health/live), the HTTP
-- ceiling the token endpoints are compared with. Counts non-200 responses.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

non200, bad_body = 0, 0

function setup(thread) c.setup(thread) end

function response(status, headers, resp)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  c.done("health_live", summary, latency)
end
