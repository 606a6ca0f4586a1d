-- Add a worker's task metrics (histogram buckets, sums, outcome counts) since its last flush
-- to the queue's task metrics hash, which the API's /metrics reads. Fields already there are
-- always added to; a new field only while the hash has fewer than ARGV[1] fields (a bound on
-- its size whatever the workers send).
-- KEYS[1]  task metrics (hash: field -> integer)
-- ARGV[1]  the most fields the hash may hold
-- ARGV[2..] field, increment, field, increment, ...
-- returns  the number of increments refused (new fields past the bound)
local cap = tonumber(ARGV[1])
local size = redis.call('HLEN', KEYS[1])
local refused = 0
for i = 2, #ARGV - 1, 2 do
  if size < cap or redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) == tonumber(ARGV[i + 1]) then
      size = size + 1
    end
  else
    refused = refused + 1
  end
end
return refused
