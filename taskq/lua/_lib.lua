-- Shared prelude, prepended to every script by taskq/scripts.py.

-- The caller owns entry `id` when it is pending for `consumer` with the delivery count the
-- caller was given (the fencing token). A missing group counts as not owned.
local function owns(stream, group, consumer, id, deliveries)
  local ok, p = pcall(redis.call, 'XPENDING', stream, group, id, id, 1)
  if not ok or not p[1] then return false end
  local e = p[1]
  if e[2] ~= consumer then return false end
  if deliveries ~= '' and tonumber(e[4]) ~= tonumber(deliveries) then return false end
  return true
end

-- Redis server time in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Keep a record bucket alive at least `ttl` ms from now; extended with some slack so that
-- batches do not each pay for a PEXPIRE.
local function keep_alive(bucket, ttl)
  ttl = tonumber(ttl)
  if redis.call('PTTL', bucket) < ttl then
    redis.call('PEXPIRE', bucket, ttl + math.min(math.floor(ttl / 10), 60000))
  end
end

-- Store a task record in its bucket hash and keep the bucket alive at least `ttl` ms.
local function put_record(bucket, task_id, record, ttl)
  redis.call('HSET', bucket, task_id, record)
  keep_alive(bucket, ttl)
end

-- The first of `calls` (each {command, key, args...}) this ACL user may not run, as
-- "the 'xadd' command on 'key'"; nil when every one is allowed. Nothing is run.
local function acl_denied(calls)
  if not redis.acl_check_cmd then return nil end  -- Redis before 7.0: not checked here
  for _, c in ipairs(calls) do
    if not redis.acl_check_cmd(unpack(c)) then
      return "the '" .. string.lower(c[1]) .. "' command on '" .. c[2] .. "'"
    end
  end
  return nil
end

-- Whether Redis would refuse a write that may add memory now (maxmemory with noeviction).
-- Must run before the script's first write: after one, Redis lets a script's writes through.
-- ZADD XX is refused for memory exactly as a new task would be, and otherwise changes nothing
-- (`key` is a stream, or missing: WRONGTYPE, or nothing to update; never a write).
local function memory_full(key)
  local ok, err = pcall(redis.call, 'ZADD', key, 'XX', '0', 'x')
  if ok then return false end
  local text = type(err) == 'table' and err.err or tostring(err)
  return string.find(text, 'OOM', 1, true) ~= nil
end

-- End a unique key's hold for `task_id` (taskq/lua/enqueue_with.lua writes it): deleted, or
-- kept `keep_ms` as "succeeded" (unique_for); untouched when it holds another task.
local function release_unique(key, task_id, keep_ms)
  local held = redis.call('GET', key)
  if not held then return end
  local state, holder, fp = string.match(held, '^(%a)\n([^\n]*)\n(.*)$')
  if state ~= 'a' or holder ~= task_id then return end
  if keep_ms > 0 then
    redis.call('SET', key, 's\n' .. task_id .. '\n' .. fp, 'PX', keep_ms)
  else
    redis.call('DEL', key)
  end
end

-- Publish `message` on a queue's events channel, as taskq/scripts.py passed it: '' publishes
-- nothing; a leading '!' asks for sharded pub/sub (SPUBLISH, a Redis Cluster of 7.0+ nodes:
-- the channel shares the queue's hash tag, so it is in this script's slot). A node that
-- refuses SPUBLISH (an older one in a mixed Cluster) gets a classic PUBLISH: the script has
-- already written, and must not fail now; waiters' re-check covers the event's loss.
local function publish(channel, message)
  if channel == '' then return end
  if string.byte(channel, 1) == 33 then
    channel = string.sub(channel, 2)
    local r = redis.pcall('SPUBLISH', channel, message)
    if type(r) ~= 'table' or not r.err then return end
  end
  redis.call('PUBLISH', channel, message)
end

-- Whether task `id` ("<lane>:<suffix>", see taskq/ids.py) still lives: in its lane's delayed
-- set, or its entry in its lane's stream (queued, running or handed back); with its due ms
-- when delayed (else 0). KEYS[k..k+8] are the stream, delayed set and entries hash of each
-- priority lane of the queue and ARGV[a..a+2] the lanes' names (taskq/scripts.py lane_keys):
-- a unique key is held per queue, and its holder may be in any lane. False for an id of no lane
-- of the queue.
local function lane_task_alive(id, k, a)
  local name = string.match(id, '^(.*):[^:]*$')
  local at = nil
  for j = 0, 2 do
    if ARGV[a + j] == name then at = k + 3 * j end
  end
  if not at then return false, 0 end
  local due = redis.call('ZSCORE', KEYS[at + 1], id)
  if due then return true, tonumber(due) end
  local entry = redis.call('HGET', KEYS[at + 2], id)
  if not entry then entry = string.match(id, ':(%d+%-%d+)$') end
  if not entry then return false, 0 end
  return #redis.call('XRANGE', KEYS[at], entry, entry) > 0, 0
end
