-- Make a queue's stored periodic schedules those of the code: add the new ones, replace the
-- changed ones (keeping their last tick, so no tick fires twice), remove the others.
-- KEYS[1]  periodic (hash; the fields are described in periodic_fire.lua)
-- ARGV[1..] per schedule: name, digest, message, info (JSON, for operators), catch-up policy
-- returns  {{name, 'added' | 'changed' | 'same', last tick ms}, ..., {name, 'removed', 0}, ...}
-- A new schedule's last tick is now (Redis time): it fires from its next tick on. Given no
-- schedule, the hash is deleted once its schedules are removed (the queue then has none: the
-- caller takes it out of the periodic-queues set, see taskq/worker/schedules.py).
local K = KEYS[1]
local now = now_ms()
-- a queue's first schedules: no pass was missed before them
if redis.call('HEXISTS', K, 'seen') == 0 then redis.call('HSET', K, 'seen', now) end
local out, keep = {}, {}
for i = 1, #ARGV, 5 do
  local name, digest = ARGV[i], ARGV[i + 1]
  keep[name] = true
  local stored = redis.call('HGET', K, 'd:' .. name)
  local state = 'same'
  if not stored then
    state = 'added'
    redis.call('HSET', K, 'l:' .. name, now, 'n:' .. name, 0, 's:' .. name, 0)
  elseif stored ~= digest then
    state = 'changed'
  end
  if state ~= 'same' then
    redis.call('HSET', K, 'd:' .. name, digest, 'p:' .. name, ARGV[i + 2], 'i:' .. name,
               ARGV[i + 3], 'c:' .. name, ARGV[i + 4])
  end
  out[#out + 1] = {name, state, tonumber(redis.call('HGET', K, 'l:' .. name) or '0')}
end
for _, field in ipairs(redis.call('HKEYS', K)) do
  if string.sub(field, 1, 2) == 'd:' then
    local name = string.sub(field, 3)
    if not keep[name] then
      for _, kind in ipairs({'d', 'p', 'i', 'c', 'l', 't', 'f', 'n', 's', 'x'}) do
        redis.call('HDEL', K, kind .. ':' .. name)
      end
      out[#out + 1] = {name, 'removed', 0}
    end
  end
end
if #ARGV == 0 then redis.call('DEL', K) end  -- (its "seen" too: new schedules start afresh)
return out
