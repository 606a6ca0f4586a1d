-- Take over entries whose lease ran out (their worker died or stalled) and report entries
-- that were pending but whose bodies were deleted, so nothing vanishes without trace.
-- KEYS[1]  stream
-- KEYS[2]  dead-letter stream
-- KEYS[3]  stats hash
-- ARGV[1]  group
-- ARGV[2]  consumer (the caller)
-- ARGV[3]  min idle ms (the lease)
-- ARGV[4]  start cursor
-- ARGV[5]  the most entries to take
-- ARGV[6]  the most XAUTOCLAIM calls
-- ARGV[7]  queue name (for dead letters of missing payloads)
-- ARGV[8]  dead-letter stream length cap (0 = none)
-- returns  {next cursor, {entry id, message, delivery count}, ..., missing count}
--          as {cursor, flat list of triples, missing}
local cursor = ARGV[4]
local want = tonumber(ARGV[5])
local out, missing = {}, 0
local now = now_ms()
for _ = 1, tonumber(ARGV[6]) do
  if want <= 0 then break end
  local ok, r = pcall(redis.call, 'XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', want)
  if not ok then return {'0-0', {}, 0} end
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    local id, body = e[1], e[2]
    if body and body ~= false then
      local payload = false
      for j = 1, #body, 2 do if body[j] == 'm' then payload = body[j + 1] end end
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      local deliveries = 1
      if p[1] then deliveries = tonumber(p[1][4]) end
      out[#out + 1] = id
      out[#out + 1] = payload or ''
      out[#out + 1] = deliveries
      want = want - 1
    end
  end
  if r[3] then
    for _, id in ipairs(r[3]) do
      missing = missing + 1
      -- a dead letter in the format of taskq/deadletter.py (no payload: it is gone)
      local fields = {'id', ARGV[7] .. ':' .. id, 'entry', id, 'task', '', 'reason', 'payload_missing',
        'error_type', 'PayloadMissing',
        'error', 'the entry was deleted while pending; its body is gone',
        'attempts', '0', 'failed_ms', tostring(now)}
      local cap = tonumber(ARGV[8])
      if cap > 0 then
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*', unpack(fields))
      else
        redis.call('XADD', KEYS[2], '*', unpack(fields))
      end
    end
  end
  if cursor == '0-0' then break end
end
if missing > 0 then
  redis.call('HINCRBY', KEYS[3], 'lost', missing)
  redis.call('HINCRBY', KEYS[3], 'dead', missing)
end
return {cursor, out, missing}
