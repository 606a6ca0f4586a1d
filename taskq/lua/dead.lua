-- Finish an owned entry by moving it to the dead letters with its reason.
-- KEYS[1]  stream
-- KEYS[2]  dead-letter stream
-- KEYS[3]  entries (hash)
-- KEYS[4]  record bucket of the task
-- KEYS[5]  stats hash
-- KEYS[6]  cancels (hash)
-- KEYS[7..] (optional) the concurrency slot set the attempt held (a sorted set: its slot is
--          freed) and/or the task's unique key (a string: released), in any order, before the
--          keys of a workflow step
-- ARGV[1]  group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count the caller was given ('' = owner check only)
-- ARGV[5]  task id
-- ARGV[6]  record (status "dead")
-- ARGV[7]  record ttl ms
-- ARGV[8]  events channel (a leading "!": sharded, see publish in _lib.lua)
-- ARGV[9]  dead-letter stream length cap (0 = none; only dead letters are ever trimmed)
-- ARGV[10..] field/value pairs of the dead letter (format: taskq/deadletter.py)
-- ARGV[last-2..last] only for a workflow step (the count from ARGV[10] is then odd): the KEYS
--          index of its workflow hash (after the slot set, if any; then its queues' streams
--          and entries hashes, see _workflow.lua), the step's index, and its failure handler's
--          input (msgpack)
-- returns  0 when the caller no longer owns the entry (nothing done), else the dead letter id
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
-- A workflow step: three more ARGV after the pairs (so an odd count from ARGV[10])
local last, wf = #ARGV, nil
if (last - 9) % 2 == 1 then
  wf = {base = tonumber(ARGV[last - 2]), step = ARGV[last - 1], failure = ARGV[last]}
  last = last - 3
end
-- the slot set and the unique key, when given, come before the workflow's keys; each is told
-- by its type (a missing one has nothing to free)
for i = 7, (wf and wf.base - 1 or #KEYS) do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'zset' then redis.call('ZREM', KEYS[i], ARGV[5])
  elseif kind == 'string' then release_unique(KEYS[i], ARGV[5], 0) end
end
local fields = {}
for i = 10, last do fields[#fields + 1] = ARGV[i] end
local cap = tonumber(ARGV[9])
local dead
if cap > 0 then
  dead = redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*', unpack(fields))
else
  dead = redis.call('XADD', KEYS[2], '*', unpack(fields))
end
redis.call('HDEL', KEYS[3], ARGV[5])
redis.call('HDEL', KEYS[6], ARGV[5])
put_record(KEYS[4], ARGV[5], ARGV[6], ARGV[7])
redis.call('HINCRBY', KEYS[5], 'dead', 1)
if ARGV[8] ~= '' then
  publish(ARGV[8], cjson.encode({{ARGV[5], 'dead'}}))
end
if wf then wf_step_ended(wf.base, wf.step, 'dead', nil, wf.failure, ARGV[7]) end
return dead
