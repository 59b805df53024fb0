-- wrk script: POST grant_type=client_credentials (client_secret_post) to the
-- token endpoint given as wrk's URL. Counts non-200 responses and 200s whose
-- body has no access_token.
--   BENCH_CLIENT_SECRET (required), BENCH_CLIENT_ID (default "bench")
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

local body
non200, bad_body = 0, 0

function setup(thread) c.setup(thread) end

function init(args)
  body = "grant_type=client_credentials&" .. c.client_auth()
end

function request()
  return wrk.format("POST", nil, c.headers, body)
end

function response(status, headers, resp)
  if status ~= 200 then
    non200 = non200 + 1
  elseif not resp:find('"access_token"%s*:%s*"') then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  c.done("client_credentials", summary, latency)
end
