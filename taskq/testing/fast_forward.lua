-- Tests only (taskq.testing.drain): bring a queue's delayed tasks `shift` ms closer, as if
-- that much time had passed; the worker's own promote script then moves the due ones.
-- KEYS[1]  delayed (sorted set: task id -> due ms)
-- ARGV[1]  shift in ms
-- returns  how many delayed tasks were moved closer
local shift = tonumber(ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  redis.call('ZINCRBY', KEYS[1], -shift, id)
end
return #ids
