-- Hand an owned entry back to the queue (it was never started, or shutdown cut it off):
-- the same message goes to the end of the stream at once, with a fresh delivery count.
-- KEYS[1]  stream
-- KEYS[2]  entries (hash)
-- KEYS[3]  (optional) the concurrency slot set the attempt held: its slot is freed
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count the caller was given
-- ARGV[5]  task id
-- ARGV[6]  message (carrying its task id)
-- returns  0 when the caller no longer owns the entry (nothing done), else the new entry id
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[5]) end
local entry = redis.call('XADD', KEYS[1], '*', 'm', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[5], entry)
return entry
