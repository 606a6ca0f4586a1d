-- Hand an owned entry back for later without using an attempt (a task name this worker does
-- not know, during a rolling deploy): ack it and hold its message in the delayed set.
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  stats hash
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count the caller was given
-- ARGV[5]  task id
-- ARGV[6]  message (carrying its task id)
-- ARGV[7]  delay ms
-- returns  0 when the caller no longer owns the entry (nothing done), else the due time in ms
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local due = now_ms() + math.max(tonumber(ARGV[7]), 0)
redis.call('ZADD', KEYS[2], due, ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('HDEL', KEYS[4], ARGV[5])
redis.call('HINCRBY', KEYS[5], 'deferred', 1)
return due
