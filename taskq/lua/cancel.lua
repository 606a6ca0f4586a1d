-- Cancel a task wherever it is: delayed (removed), queued (its entry deleted before any
-- delivery), or running (a cancel request the owning worker acts on).
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  cancels (hash)
-- KEYS[6]  record bucket of the task
-- ARGV[1]  group
-- ARGV[2]  task id
-- ARGV[3]  entry id implied by the task id ('' if none)
-- ARGV[4]  record (status "cancelled")
-- ARGV[5]  record ttl ms
-- ARGV[6]  events channel (a leading "!": sharded, see publish in _lib.lua)
-- returns  'delayed' | 'queued' | 'running' | 'unknown'; 'delayed' and 'queued' are followed by
--          a tab and the task's unique key when its message holds one (the caller releases it)
local id = ARGV[2]
local function unique_of(payload)
  -- (cmsgpack is in every Redis; the memory:// stand-in lacks it: its keys are taken over)
  if not payload or not cmsgpack then return '' end
  local ok, msg = pcall(cmsgpack.unpack, payload)
  if ok and type(msg) == 'table' and type(msg['u']) == 'string' then return '\t' .. msg['u'] end
  return ''
end
local function finish()
  put_record(KEYS[6], id, ARGV[4], ARGV[5])
  publish(ARGV[6], cjson.encode({{id, 'cancelled'}}))
end
if redis.call('ZSCORE', KEYS[2], id) then
  local u = unique_of(redis.call('HGET', KEYS[3], id))
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  finish()
  return 'delayed' .. u
end
local entry = redis.call('HGET', KEYS[4], id) or ARGV[3]
if entry == '' then return 'unknown' end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
if ok and p[1] then
  redis.call('HSET', KEYS[5], id, now_ms())
  return 'running'
end
local rows = redis.call('XRANGE', KEYS[1], entry, entry)
if #rows > 0 then
  local u, body = '', rows[1][2]
  for j = 1, #body, 2 do if body[j] == 'm' then u = unique_of(body[j + 1]) end end
  redis.call('XDEL', KEYS[1], entry)
  redis.call('HDEL', KEYS[4], id)
  finish()
  return 'queued' .. u
end
return 'unknown'
