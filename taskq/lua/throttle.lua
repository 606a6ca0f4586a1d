-- Let an owned entry start under its task's limits, or make it wait: one atomic decision.
-- Rate (GCRA on the Redis clock, no burst): starts are spaced `interval` ms apart; an entry
-- over the rate reserves the next free start time and waits in the delayed set until then
-- (when it comes back its reservation lets it start). Concurrency: a sorted set of the task
-- ids running, scored by their lease deadline (expired ones are dropped first, so a dead
-- worker's slot frees within a lease); full, the entry waits `poll` ms and asks again.
-- Waiting acks the entry and delays the same message (attempts unchanged): no attempt is used,
-- no failure recorded.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  stats hash
-- KEYS[6]  reservations (sorted set: task id -> reserved start ms)
-- KEYS[7]  the rate state (a string: GCRA's theoretical arrival time), when ARGV[7] > 0
-- KEYS[7 or 8] the concurrency slots (sorted set), when ARGV[9] > 0
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count the caller was given
-- ARGV[5]  task id
-- ARGV[6]  message to delay when it must wait (carrying its task id)
-- ARGV[7]  rate interval ms (0: no rate limit)
-- ARGV[8]  concurrency limit (0: none)
-- ARGV[9]  lease ms (a slot's life without renewal)
-- ARGV[10] wait ms when the concurrency limit is reached
-- returns  {1} start (a concurrency slot is held now, if limited); {0, due ms, 'rate' or
--          'concurrency'} it waits until then; {-1} the caller no longer owns the entry
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return {-1} end
local id = ARGV[5]
local interval, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local lease = tonumber(ARGV[9])
local now = now_ms()
local rate_key, slots_key
local k = 7
if interval > 0 then rate_key = KEYS[k]; k = k + 1 end
if limit > 0 then slots_key = KEYS[k] end

local function wait_until(due, why)
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], due, id)
  redis.call('HSET', KEYS[3], id, ARGV[6])
  redis.call('HDEL', KEYS[4], id)
  redis.call('HINCRBY', KEYS[5], 'throttled', 1)
  redis.call('HINCRBY', KEYS[5], 'throttled_' .. why, 1)
  return {0, due, why}
end

local reserved = false
if rate_key then reserved = redis.call('ZSCORE', KEYS[6], id) end
if slots_key then
  redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now)
  if not redis.call('ZSCORE', slots_key, id) and redis.call('ZCARD', slots_key) >= limit then
    return wait_until(now + tonumber(ARGV[10]), 'concurrency')  -- a reservation is kept
  end
end
if rate_key then
  if reserved then
    redis.call('ZREM', KEYS[6], id)
  else
    local tat = tonumber(redis.call('GET', rate_key) or '0')
    if tat < now then tat = now end
    local next_tat = tat + interval
    redis.call('SET', rate_key, string.format('%.3f', next_tat), 'PX',
               math.ceil(next_tat - now) + 1000)
    if tat > now then
      -- over the rate: the start time `tat` is this entry's; it waits for it
      local due = math.ceil(tat)
      redis.call('ZADD', KEYS[6], due, id)
      redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 3600000)  -- never claimed
      return wait_until(due, 'rate')
    end
  end
end
if slots_key then
  redis.call('ZADD', slots_key, now + lease, id)
  redis.call('PEXPIRE', slots_key, lease * 2)
end
return {1}
