-- Add ready messages to a queue's stream unless its backlog limit would be passed.
-- KEYS[1]  stream
-- ARGV[1]  backlog limit (0 = none)
-- ARGV[2..] encoded messages
-- returns  {1, stream length after, entry id, ...} when every message was added (length -1 when
--          no limit was checked); {0, stream length} when refused (then nothing was added)
-- An ACL refusal names the command (Redis 7.0 does not, inside a script).
local denied = acl_denied({{'XADD', KEYS[1], '*', 'm', 'x'}, {'XLEN', KEYS[1]}})
if denied then
  return redis.error_reply('NOPERM this user has no permissions to run ' .. denied)
end
local limit = tonumber(ARGV[1])
local len = -1
if limit > 0 then
  len = redis.call('XLEN', KEYS[1])
  if len + #ARGV - 1 > limit then return {0, len} end
  len = len + #ARGV - 1
end
local out = {1, len}
for i = 2, #ARGV do
  out[i + 1] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return out
