-- Renew the concurrency slots of attempts still running (with their leases): push each one's
-- deadline to a lease from now (Redis clock), only while the slot is still held.
-- KEYS[1..n] slot sets (sorted sets: task id -> lease deadline ms), one per member below
-- ARGV[1]  lease ms
-- ARGV[2..n+1] the task id holding a slot in the set of the same position
-- returns  how many slots were renewed
local lease = tonumber(ARGV[1])
local deadline = now_ms() + lease
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', deadline, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], lease * 2)
end
return renewed
