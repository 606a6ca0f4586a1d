-- Wake the waiters of concurrency slots just freed: move the earliest tasks that wait for a
-- slot of this set (see throttle.lua) from the delayed set to the stream now, instead of at
-- the end of their 100-300 ms wait. Best effort, called after the script that freed the slot:
-- a woken task that finds the slot taken again waits again. Only a task whose delayed due is
-- still the end of its slot wait is woken: one that came back and now waits for something else
-- (its start slot on a rate: woken early it would start ahead of the rate) is left there.
-- KEYS[1]  waiters (sorted set: task id -> the end of its wait; this lane's, of one slot set)
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  stream
-- ARGV[1]  how many to wake (slots freed)
-- returns  how many were woken
local want, woken = tonumber(ARGV[1]), 0
for _ = 1, want + 8 do  -- (bounded: waiters that started, or were cancelled, are skipped)
  if woken >= want then break end
  local top = redis.call('ZPOPMIN', KEYS[1])
  if #top == 0 then break end
  local id = top[1]
  local due = redis.call('ZSCORE', KEYS[2], id)
  local payload = due and tonumber(due) == tonumber(top[2]) and redis.call('HGET', KEYS[3], id)
  if payload then
    -- as promote.lua: the payload leaves the hash before the XADD (at maxmemory only a
    -- script's first write that may add memory is refused); put back if the XADD fails
    redis.call('HDEL', KEYS[3], id)
    local ok, entry = pcall(redis.call, 'XADD', KEYS[5], '*', 'm', payload)
    if not ok then
      redis.call('HSET', KEYS[3], id, payload)
      return woken
    end
    redis.call('HSET', KEYS[4], id, entry)
    redis.call('ZREM', KEYS[2], id)
    woken = woken + 1
  end
end
return woken
