-- Pause or resume one periodic schedule. A paused schedule's ticks pass without a task; a
-- resumed one fires from its next tick on (the ticks of the pause are not caught up).
-- KEYS[1]  periodic (hash; the fields are described in periodic_fire.lua)
-- ARGV[1]  schedule name
-- ARGV[2]  '1' pause, '0' resume
-- returns  1, or 0 when no such schedule is stored
local K, name = KEYS[1], ARGV[1]
if redis.call('HEXISTS', K, 'd:' .. name) == 0 then return 0 end
if ARGV[2] == '1' then
  redis.call('HSET', K, 'x:' .. name, 1)
else
  redis.call('HDEL', K, 'x:' .. name)
  local last = tonumber(redis.call('HGET', K, 'l:' .. name) or '0')
  local now = now_ms()
  if last < now then redis.call('HSET', K, 'l:' .. name, now) end
end
return 1
