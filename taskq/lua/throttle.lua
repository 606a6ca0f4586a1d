-- Let an owned entry start under its task's limits, or make it wait: one atomic decision.
-- Rate (GCRA on the Redis clock): an entry over the rate books the next free start time
-- (spaced `interval` ms apart) and waits in the delayed set until then; when it comes back its
-- reservation stands. Every start also passes a second GCRA on the starts themselves, with a
-- tolerance of `slack` ms: an entry that comes back late (a busy worker, a slow promotion)
-- when starts ran ahead takes the next start slot and waits for it, so late entries are spread
-- at the rate again instead of starting in a burst. It starts without a check if it is back by
-- that slot (it was counted there); later, it asks anew. Usually at most three checks per
-- start: booked, paced, started. Concurrency: a sorted set of the task
-- ids running, scored by their lease deadline (expired ones are dropped first, so a dead
-- worker's slot frees within a lease); full, the entry waits `poll` ms and asks again.
-- Waiting acks the entry and delays the same message (attempts unchanged): no attempt is used,
-- no failure recorded.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  stats hash
-- KEYS[6]  reservations (sorted set: task id -> booked start ms; "<task id>:p" -> the start
--          slot it took on the starts' GCRA)
-- KEYS[7]  the rate's bookings (a string: GCRA's theoretical arrival time), when ARGV[7] > 0
-- KEYS[8]  the rate's starts (the same, for starts), when ARGV[7] > 0
-- KEYS[7 or 9] the concurrency slots (sorted set), when ARGV[8] > 0
-- KEYS[8 or 10] the slots' waiters of this lane (sorted set: task id -> the end of its wait;
--          wake.lua moves the earliest to the stream when a slot is freed), when ARGV[8] > 0
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
-- ARGV[11] slack ms: how far starts may run ahead of the rate (a small burst)
-- returns  {1} start (a concurrency slot is held now, if limited); {0, due ms, 'rate' or
--          'concurrency'} it waits until then; {-1} the caller no longer owns the entry
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return {-1} end
local id = ARGV[5]
local interval, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local lease, slack = tonumber(ARGV[9]), tonumber(ARGV[11])
local clock = redis.call('TIME')  -- in ms with its microseconds: fast rates need them
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local book_key, pace_key, slots_key, waiters_key
local k = 7
if interval > 0 then book_key, pace_key = KEYS[7], KEYS[8]; k = 9 end
if limit > 0 then slots_key, waiters_key = KEYS[k], KEYS[k + 1] end

local function wait_until(due, why)
  due = math.ceil(due)
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], due, id)
  redis.call('HSET', KEYS[3], id, ARGV[6])
  redis.call('HDEL', KEYS[4], id)
  redis.call('HINCRBY', KEYS[5], 'throttled', 1)
  redis.call('HINCRBY', KEYS[5], 'throttled_' .. why, 1)
  return {0, due, why}
end

-- GCRA's theoretical arrival time of `key`, not before now
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then return now end
  return tat
end

local function set_tat(key, tat)
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end

local paced, booked = false, false
if book_key then
  local slot = redis.call('ZSCORE', KEYS[6], id .. ':p')
  if slot and now <= tonumber(slot) then
    paced = true  -- back in time for the start slot it took when it was late: it starts
  else
    if slot then  -- back after its slot (a slow promotion): the slot is lost, it asks anew
      redis.call('ZREM', KEYS[6], id .. ':p')
      booked = true  -- (it was booked before it took the slot: only the starts' check)
    else
      booked = redis.call('ZSCORE', KEYS[6], id) ~= false
    end
    if not booked then
      local tat = tat_of(book_key)
      set_tat(book_key, tat + interval)
      if tat > now then
        -- over the rate: it holds the start time `tat` from now on (kept through waits)
        local due = math.ceil(tat)
        redis.call('ZADD', KEYS[6], due, id)
        redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 3600000)  -- never claimed
        return wait_until(due, 'rate')
      end
    end
    local pace = tat_of(pace_key)
    if pace - slack > now then
      -- late (starts ran ahead of the rate meanwhile): take the next start slot, wait for it
      -- (it comes back up to `slack` early, and starts if it is back by `pace`)
      set_tat(pace_key, pace + interval)
      if booked then redis.call('ZREM', KEYS[6], id) end
      redis.call('ZADD', KEYS[6], string.format('%.3f', pace), id .. ':p')
      return wait_until(math.ceil(pace - slack), 'rate')
    end
  end
end
if slots_key then
  redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now)
  if not redis.call('ZSCORE', slots_key, id) and redis.call('ZCARD', slots_key) >= limit then
    if book_key and not paced and not booked then
      redis.call('ZADD', KEYS[6], math.floor(now), id)  -- it keeps the start it was given
    end
    local due = math.ceil(now + tonumber(ARGV[10]))
    redis.call('ZADD', waiters_key, due, id)  -- (woken early when a slot is freed)
    local ttl = due - math.floor(now) + lease  -- (outlives every wait in it)
    if redis.call('PTTL', waiters_key) < ttl then redis.call('PEXPIRE', waiters_key, ttl) end
    return wait_until(due, 'concurrency')
  end
  redis.call('ZADD', slots_key, now + lease, id)
  redis.call('PEXPIRE', slots_key, lease * 2)
  redis.call('ZREM', waiters_key, id)
end
if paced then
  redis.call('ZREM', KEYS[6], id .. ':p')
elseif book_key then
  set_tat(pace_key, tat_of(pace_key) + interval)
  if booked then redis.call('ZREM', KEYS[6], id) end
end
return {1}
