-- Put a dead letter back on its queue with its attempts reset, and drop the task's "dead"
-- record so that its status reads queued/running again (not the old terminal state). A task
-- sent with a unique key takes its key again in the same step; while the key is held by
-- another task that lives (or is kept after its success, unique_for), the dead letter is not
-- replayed and stays where it is: a replay never makes a second live task of one key.
-- KEYS[1]  dead-letter stream
-- KEYS[2]  stream
-- KEYS[3]  entries (hash)
-- KEYS[4]  record bucket of the task
-- KEYS[5]  (only for a task with a unique key) the key
-- KEYS[6..14] (with KEYS[5]) stream, delayed set and entries hash of each lane of the queue
-- ARGV[1]  dead letter id
-- ARGV[2]  message to enqueue (attempts reset, task id kept)
-- ARGV[3]  task id
-- ARGV[4..6] (with KEYS[5]) the names of the lanes of KEYS[6..14]
-- returns  the new entry id; false when the dead letter is gone; or {holder task id, 'a' (it
--          lives) | 's' (kept after success)} when the key is held by another task (nothing
--          was done)
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local task_id = ARGV[3]
if KEYS[5] then
  local held = redis.call('GET', KEYS[5])
  if held then
    local state, holder = string.match(held, '^(%a)\n([^\n]*)\n')
    if holder ~= task_id then
      if state == 's' then return {holder, 's'} end
      if state == 'a' and lane_task_alive(holder, 6, 4) then return {holder, 'a'} end
    end
  end
  redis.call('SET', KEYS[5], 'a\n' .. task_id .. '\n')
end
local entry = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
redis.call('HSET', KEYS[3], task_id, entry)
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], task_id, task_id .. ':p')
return entry
