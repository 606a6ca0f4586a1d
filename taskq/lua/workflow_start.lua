-- Start a workflow: store its state and enqueue its first steps, all at once or nothing.
-- KEYS[1]  the workflow hash (layout: _workflow.lua)
-- KEYS[2..] the stream and entries hash of each of the workflow's queues, in order
-- ARGV[1]  backlog limit of each stream (0 = none)
-- ARGV[2]  h: how many field/value pairs of the workflow hash follow
-- ARGV[3 .. 2 + 2h] the pairs
-- ARGV[3 + 2h ..] the first steps, three values each: queue index (1-based), task id, envelope
-- returns  {1, entry id, ...} (the first steps' entries, in order); {0, queue index, stream
--          length} when a queue's backlog limit refused it; {-1} when the workflow exists
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local limit = tonumber(ARGV[1])
local h = tonumber(ARGV[2])
local first = 3 + 2 * h
if limit > 0 then
  local adding = {}
  for i = first, #ARGV, 3 do
    local q = tonumber(ARGV[i])
    adding[q] = (adding[q] or 0) + 1
  end
  for q, n in pairs(adding) do
    local len = redis.call('XLEN', KEYS[2 * q])
    if len + n > limit then return {0, q, len} end
  end
end
for i = 3, first - 1, 2 * 500 do  -- unpack() has a stack limit: big workflows go in slices
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 2 * 500 - 1, first - 1)))
end
local out = {1}
for i = first, #ARGV, 3 do
  local q = tonumber(ARGV[i])
  local entry = redis.call('XADD', KEYS[2 * q], '*', 'm', ARGV[i + 2])
  redis.call('HSET', KEYS[2 * q + 1], ARGV[i + 1], entry)
  out[#out + 1] = entry
end
return out
