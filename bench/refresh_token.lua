-- wrk script: POST grant_type=refresh_token, spending every refresh token
-- exactly once. The token server rotates refresh tokens, so each response's
-- new refresh_token goes back into this thread's pool and feeds a later
-- request.
--
-- wrk runs many connections per thread on one Lua state, and calls
-- response() for a connection before that connection's next request(), so a
-- per-thread pool never runs dry while every response is a 200 if it starts
-- with (connections per thread + 1) tokens: the +1 is because wrk calls
-- request() once in thread 0's state at startup to inspect the request, and
-- that token is never sent. The initial tokens come from the file
-- $BENCH_RT_FILE (one per line, obtained by run.sh with the password grant),
-- dealt round-robin to the $BENCH_THREADS threads, so the file needs
-- threads * (connections / threads + 1) lines.
--   BENCH_CLIENT_SECRET, BENCH_RT_FILE, BENCH_THREADS (required)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

local prefix
local pool, head, tail = {}, 1, 0
non200, bad_body, starved = 0, 0, 0

function setup(thread) c.setup(thread) end

function init(args)
  prefix = "grant_type=refresh_token&" .. c.client_auth() .. "&refresh_token="
  local nthreads = tonumber(c.env("BENCH_THREADS"))
  local f = assert(io.open(c.env("BENCH_RT_FILE"), "r"))
  local i = 0
  for line in f:lines() do
    if line ~= "" then
      if i % nthreads == id then
        tail = tail + 1
        pool[tail] = line
      end
      i = i + 1
    end
  end
  f:close()
end

function request()
  local rt
  if head <= tail then
    rt = pool[head]
    pool[head] = nil
    head = head + 1
  else
    -- Only reachable after failed responses lost tokens: send a request that
    -- fails visibly rather than reusing (and so invalidating) a token.
    starved = starved + 1
    rt = "pool-exhausted"
  end
  return wrk.format("POST", nil, c.headers, prefix .. c.urlencode(rt))
end

function response(status, headers, resp)
  if status ~= 200 then
    non200 = non200 + 1
    return
  end
  local rt = resp:match('"refresh_token"%s*:%s*"([^"]+)"')
  if not rt or not resp:find('"access_token"%s*:%s*"') then
    bad_body = bad_body + 1
    return
  end
  tail = tail + 1
  pool[tail] = rt
end

function done(summary, latency, requests)
  local s = 0
  for _, t in ipairs(c.threads) do s = s + (t:get("starved") or 0) end
  if s > 0 then io.write(string.format("refresh_token: %d requests found the token pool empty\n", s)) end
  c.done("refresh_token", summary, latency)
end
