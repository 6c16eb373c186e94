-- wrk script of gatehouse's load harness (loadtest/run.sh).
--
--   wrk -t1 -c64 -d10s --latency -s lt.lua URL -- MODE HOST [FILE [FILE2 [LIMIT]]]
--
-- MODE
--   plain   GET without credentials
--   token   one bearer token (first line of FILE) on every request: the warm verified-token cache
--   miss    the next line of FILE on every request (distinct pre-minted tokens: cache misses);
--           the thread stops after LIMIT responses (LIMIT <= lines of FILE, so no token repeats)
--   mix     80 % a valid token from FILE, 20 % a forged one from FILE2 (deterministic pattern:
--           requests 0,5,10,... of each 5 are the forged ones)
--   dpop    `Authorization: DPoP <first line of FILE>` and `DPoP: <the next line of FILE2>` (the
--           proofs, each single use); the thread stops after LIMIT responses, LIMIT set a margin
--           of 256 below the lines of FILE2 (the requests in flight when it stops still get
--           unused proofs). A proof is never sent twice: past the last one, requests go without a
--           `DPoP` header and are refused (401, counted in LT_STATUS and as non-2xx). One wrk
--           thread only (-t1): each thread would read the same proofs.
-- HOST is the Host header ("-" leaves wrk's default).
--
-- done() prints machine-readable lines that loadtest/report.py parses:
--   LT_SUMMARY requests=N duration_us=N bytes=N connect=N read=N write=N status=N timeout=N
--   LT_PCT <percentile> <latency_us>          (the latency distribution, for the nines plot)
--   LT_STATUS <code> <count>                  (miss and mix: responses counted per status)
--   LT_WINDOW requests=N elapsed_us=N         (miss: wrk's own duration is always -d, even when
--                                              the thread stops early, so the rate of the miss
--                                              run is taken from this window: first request to
--                                              the LIMIT-th response, CLOCK_MONOTONIC via FFI)

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } lt_timespec;
int clock_gettime(int clk_id, lt_timespec *tp);
]]
local ts = ffi.new("lt_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local mode, host, file1, file2, limit
local reqs = {}
local nreqs = 0
local idx = 0
-- Globals, so that done() can read them from the thread with thread:get().
lt_counts = {}
lt_seen = 0
lt_t0 = 0
lt_t1 = 0
lt_n1 = 0 -- responses at lt_t1 (the LIMIT-th): the window's count, not the in-flight ones after it

local function read_lines(path)
  local t = {}
  for line in io.lines(path) do
    if #line > 0 then t[#t + 1] = line end
  end
  return t
end

local function build(token, scheme)
  local headers = {}
  if host ~= "-" then headers["Host"] = host end
  if token then headers["Authorization"] = (scheme or "Bearer") .. " " .. token end
  return wrk.format("GET", wrk.path, headers)
end

-- dpop mode: the request is a fixed head, the proof and the blank line (no table per request).
local proofs, dpop_head, dpop_bare

-- Only the miss and mix modes count statuses (a response() callback makes wrk parse every
-- response, so the plain and token modes leave it out to keep the client as cheap as it gets).
local function count_response(status, headers, body)
  lt_counts[status] = (lt_counts[status] or 0) + 1
  lt_seen = lt_seen + 1
  if (mode == "miss" or mode == "dpop") and lt_seen == limit then
    lt_t1 = now_us()
    lt_n1 = lt_seen
    wrk.thread:stop()
  end
end

function init(args)
  mode = args[1] or "plain"
  host = args[2] or "-"
  file1 = args[3]
  file2 = args[4]
  limit = tonumber(args[5] or "0")
  if mode == "plain" then
    reqs[1] = build(nil)
  elseif mode == "token" then
    reqs[1] = build(read_lines(file1)[1])
  elseif mode == "miss" then
    for _, t in ipairs(read_lines(file1)) do reqs[#reqs + 1] = build(t) end
  elseif mode == "mix" then
    local valid, forged = read_lines(file1), read_lines(file2)
    local v, f = 0, 0
    for i = 0, 999 do
      if i % 5 == 0 then
        f = f % #forged + 1; reqs[#reqs + 1] = build(forged[f])
      else
        v = v % #valid + 1; reqs[#reqs + 1] = build(valid[v])
      end
    end
  elseif mode == "dpop" then
    local token = read_lines(file1)[1]
    proofs = read_lines(file2)
    -- wrk.format ends the head with a blank line: the DPoP header goes in front of it.
    dpop_bare = build(token, "DPoP")
    dpop_head = dpop_bare:sub(1, -3) .. "DPoP: "
    local cap = #proofs - 256
    if cap < 1 then error("dpop: " .. #proofs .. " proofs, at least 257 needed") end
    if limit == nil or limit <= 0 or limit > cap then limit = cap end
  else
    error("unknown mode " .. tostring(mode))
  end
  nreqs = #reqs
  if mode == "miss" and (limit == nil or limit <= 0 or limit > nreqs) then limit = nreqs end
  if mode == "plain" or mode == "token" then
    -- Static request: wrk builds it once from wrk.headers, no Lua call per request.
    if host ~= "-" then wrk.headers["Host"] = host end
    if mode == "token" then wrk.headers["Authorization"] = "Bearer " .. read_lines(file1)[1] end
    request = nil
  else
    response = count_response
  end
end

function request()
  if lt_t0 == 0 then lt_t0 = now_us() end
  idx = idx + 1
  if mode == "dpop" then
    local proof = proofs[idx]
    if proof == nil then return dpop_bare end -- out of proofs: refused, never a replay
    return dpop_head .. proof .. "\r\n\r\n"
  end
  if idx > nreqs then idx = 1 end
  return reqs[idx]
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LT_SUMMARY requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  -- The distribution as HdrHistogram plots it: ten percentiles per "nine" (p = 1 - 10^(-k/10),
  -- up to 99.999 %), read from wrk's histogram of 1 us buckets, plus the usual round ones.
  local pcts = {1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}
  for k = 1, 50 do pcts[#pcts + 1] = 100 * (1 - 10 ^ (-k / 10)) end
  table.sort(pcts)
  local written = {}
  for _, p in ipairs(pcts) do
    local key = string.format("%g", p)
    if not written[key] then
      written[key] = true
      io.write(string.format("LT_PCT %s %d\n", key, latency:percentile(p)))
    end
  end
  io.write(string.format("LT_PCT 100 %d\n", latency.max))
  for _, t in ipairs(threads) do
    local c = t:get("lt_counts")
    if c then
      for code, n in pairs(c) do io.write(string.format("LT_STATUS %s %d\n", code, n)) end
    end
    local t0, t1, n1 = t:get("lt_t0"), t:get("lt_t1"), t:get("lt_n1")
    if t0 and t1 and t1 > t0 then
      io.write(string.format("LT_WINDOW requests=%d elapsed_us=%d\n", n1, t1 - t0))
    end
  end
end
