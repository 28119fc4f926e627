-- wrk at a constant request rate, each latency counted from the moment the request was due.
--
--   wrk -t N -c N -d 60s -s bench/constant_rate.lua URL -- RATE N
--
-- RATE is the total rate in requests per second and N the number of connections, one per wrk
-- thread (the script keeps one schedule per Lua state, so each thread must own exactly one
-- connection: pass the same N to -t, -c and here). Connection k sends its requests at
-- base + (k + i * N) / RATE seconds, i = 0, 1, 2 ...; the N schedules interleave into one
-- constant rate. A request whose turn comes while the previous answer on its connection is
-- still awaited goes out as soon as that answer arrives, and its latency still runs from its
-- due time: the wait caused by a slow answer is counted for every request it held back, which
-- is how wrk2 corrects for coordinated omission. A request sent before its due time (wrk's
-- timers have millisecond resolution) counts from the moment it was sent.
--
-- At the end it prints, for bench/api.py to read:
--   constant-rate base <µs>        the first due time (CLOCK_MONOTONIC)
--   constant-rate thread <last response µs> <non-200 answers> <latency µs> <latency µs> ...

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } constant_rate_timespec;
int clock_gettime(int clock_id, constant_rate_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("constant_rate_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

-- Main state: number the threads and give them one shared start, a little after start-up.
local threads = {}
local start = nil

function setup(thread)
  if start == nil then
    start = now_us() + 200000
  end
  thread:set("index", #threads)
  thread:set("base", start)
  table.insert(threads, thread)
end

-- Thread states.
function init(args)
  local rate = tonumber(args[1])
  local connections = tonumber(args[2])
  if rate == nil or connections == nil or rate <= 0 or connections < 1 then
    error("constant_rate.lua needs two arguments: RATE (requests/s) and N (connections)")
  end
  interval = connections * 1e6 / rate
  due = base + index * 1e6 / rate
  sent = nil
  latencies = {}
  failures = 0
  last = 0
end

function delay()
  local wait_ms = (due - now_us()) / 1000
  if wait_ms < 1 then
    return 0
  end
  return math.floor(wait_ms)
end

function request()
  sent = now_us()
  return wrk.format()
end

function response(status, headers, body)
  local now = now_us()
  local from = due
  if sent ~= nil and sent < due then
    from = sent
  end
  latencies[#latencies + 1] = now - from
  if status ~= 200 then
    failures = failures + 1
  end
  last = now
  due = due + interval
end

function done(summary, latency, requests)
  io.write(string.format("constant-rate base %.1f\n", start))
  for _, thread in ipairs(threads) do
    local values = thread:get("latencies")
    local parts = {}
    for i = 1, #values do
      parts[i] = string.format("%.1f", values[i])
    end
    io.write(string.format(
      "constant-rate thread %.1f %d %s\n",
      thread:get("last"), thread:get("failures"), table.concat(parts, " ")
    ))
  end
end
