-- Move due delayed tasks to the stream. Any worker may run it at any time: it is atomic.
-- KEYS[1]  delayed (sorted set: task id -> due ms)
-- KEYS[2]  payloads (hash: task id -> message)
-- KEYS[3]  entries (hash: task id -> current entry id)
-- KEYS[4]  stream
-- KEYS[5]  stats hash
-- ARGV[1]  the most to move in one call
-- returns  {moved, missing payloads}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
local moved, missing = 0, 0
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', KEYS[2], id)
  if payload then
    -- The payload leaves the hash before its entry is added: at maxmemory Redis refuses only a
    -- script's first write that may add memory (XADD), not the writes after one, and moving a
    -- task from the hash to the stream adds none, so due tasks are promoted under memory
    -- pressure too. Should the XADD fail all the same, the payload goes back (still delayed).
    redis.call('HDEL', KEYS[2], id)
    local ok, entry = pcall(redis.call, 'XADD', KEYS[4], '*', 'm', payload)
    if not ok then
      redis.call('HSET', KEYS[2], id, payload)
      return redis.error_reply(type(entry) == 'table' and entry.err or tostring(entry))
    end
    redis.call('HSET', KEYS[3], id, entry)
    moved = moved + 1
  else
    missing = missing + 1
  end
  redis.call('ZREM', KEYS[1], id)
end
if missing > 0 then redis.call('HINCRBY', KEYS[5], 'lost', missing) end
return {moved, missing}
