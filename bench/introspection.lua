-- wrk script: RFC 7662 introspection of one valid access token
-- ($BENCH_INTROSPECT_TOKEN) by the confidential client (client_secret_post)
-- at the endpoint given as wrk's URL. Counts non-200 responses and 200s whose
-- body does not say "active":true.
--   BENCH_CLIENT_SECRET, BENCH_INTROSPECT_TOKEN (required)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

local body
non200, bad_body = 0, 0

function setup(thread) c.setup(thread) end

function init(args)
  body = "token=" .. c.urlencode(c.env("BENCH_INTROSPECT_TOKEN")) ..
         "&token_type_hint=access_token&" .. c.client_auth()
end

function request()
  return wrk.format("POST", nil, c.headers, body)
end

function response(status, headers, resp)
  if status ~= 200 then
    non200 = non200 + 1
  elseif not resp:find('"active"%s*:%s*true') then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  c.done("introspection", summary, latency)
end
