-- Hold messages until a due time on the Redis clock (delayed tasks).
-- KEYS[1]  delayed (sorted set: task id -> due ms)
-- KEYS[2]  payloads (hash: task id -> message)
-- KEYS[3]  stream (only checked: promotion must be allowed to move the tasks there)
-- ARGV[1]  backlog limit for the delayed set (0 = none)
-- ARGV[2..] triples: task id, message, delay ms
-- returns  {1, due ms, ...} when all were scheduled; {0, delayed count} when refused
-- A task accepted here must be able to run: refuse (NOPERM) when this ACL user could not
-- promote it (taskq/lua/promote.lua moves it from KEYS[1]/KEYS[2] to the stream).
local denied = acl_denied({{'XADD', KEYS[3], '*', 'm', 'x'}, {'ZREM', KEYS[1], 'x'},
                           {'HDEL', KEYS[2], 'x'}})
if denied then
  return redis.error_reply('NOPERM this user has no permissions to run ' .. denied ..
                           ', which promoting a delayed task needs')
end
local limit = tonumber(ARGV[1])
local n = (#ARGV - 1) / 3
if limit > 0 then
  local len = redis.call('ZCARD', KEYS[1])
  if len + n > limit then return {0, len} end
end
local now = now_ms()
local out = {1}
for i = 2, #ARGV, 3 do
  local due = now + tonumber(ARGV[i + 2])
  redis.call('ZADD', KEYS[1], due, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  out[#out + 1] = due
end
return out
