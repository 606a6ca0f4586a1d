-- Release a unique key held for a task that ended outside a worker (cancelled while queued or
-- delayed: taskq/lua/cancel.lua names the key): deleted only while it holds that task.
-- KEYS[1]  the unique key
-- ARGV[1]  task id
-- returns  1
release_unique(KEYS[1], ARGV[1], 0)
return 1
