-- Put a dead letter back on its queue with its attempts reset, and drop the task's "dead"
-- record so that its status reads queued/running again (not the old terminal state).
-- KEYS[1]  dead-letter stream
-- KEYS[2]  stream
-- KEYS[3]  entries (hash)
-- KEYS[4]  record bucket of the task
-- ARGV[1]  dead letter id
-- ARGV[2]  message to enqueue (attempts reset, task id kept)
-- ARGV[3]  task id
-- returns  the new entry id, or false when the dead letter is gone
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local entry = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], entry)
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[3], ARGV[3] .. ':p')
return entry
