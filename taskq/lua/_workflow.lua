-- Workflow prelude (taskq/workflow/): prepended after _lib.lua to the scripts that end a
-- workflow step (complete, dead) and to the workflow scripts. One hash per workflow holds its
-- state (layout: taskq/workflow/layout.py):
--   status   running | succeeded | failed | cancelled
--   left     steps not ended yet (failure handlers count only once triggered)
--   onerr    index of the workflow's on_error step ('' none)
--   d:<n>    step n's fixed definition: "input\tkeep\tfail\tnext\tpre\tqueue\ttask id"
--            input '' none, '1' the single predecessor's result, 'L' the list of the results
--            of `pre`; keep '1' when a successor needs the result; fail: index of the step's
--            own on_failure step ('' none); next, pre: comma-separated step indexes; queue: the
--            1-based index of the step's queue in the workflow's queue list
--   st:<n>   waiting | standby (a failure handler) | queued | succeeded | dead | cancelled
--            | skipped
--   w:<n>    predecessors still to succeed (steps that wait)
--   e:<n>    envelope of a step not enqueued yet (deleted once enqueued)
--   r:<n>    the step's result (msgpack), kept while a successor needs it
-- A step's streams: KEYS[base + 2q - 1] is the stream of queue q, KEYS[base + 2q] its entries
-- hash, where KEYS[base] is the workflow hash.

local function wf_def(wf, n)
  local d = redis.call('HGET', wf, 'd:' .. n)
  if not d then return nil end
  local input, keep, fail, nxt, pre, q, id =
    string.match(d, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
  return {input = input, keep = keep == '1', fail = fail, next = nxt, pre = pre,
          queue = tonumber(q), id = id}
end

-- msgpack array header of n elements
local function wf_array_header(n)
  if n < 16 then return string.char(144 + n) end
  if n < 65536 then return string.char(220, math.floor(n / 256), n % 256) end
  return string.char(221, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end

-- Enqueue step n: its stored envelope with `input` (msgpack bytes, or nil) appended as field
-- "x" (the envelope is a fixmap written by taskq/codec.py: its count is raised by one).
local function wf_push(wf, base, n, def, input)
  local env = redis.call('HGET', wf, 'e:' .. n)
  if not env then return end
  if input then
    local head = string.byte(env, 1)
    if head >= 128 and head < 143 then
      env = string.char(head + 1) .. string.sub(env, 2) .. string.char(161) .. 'x' .. input
    end
  end
  local entry = redis.call('XADD', KEYS[base + 2 * def.queue - 1], '*', 'm', env)
  redis.call('HSET', KEYS[base + 2 * def.queue], def.id, entry)
  redis.call('HSET', wf, 'st:' .. n, 'queued')
  redis.call('HDEL', wf, 'e:' .. n)
end

local function wf_left(wf, delta, ttl)
  local left = redis.call('HINCRBY', wf, 'left', delta)
  if left <= 0 then
    if redis.call('HGET', wf, 'status') == 'running' then
      redis.call('HSET', wf, 'status', 'succeeded')
    end
    redis.call('PEXPIRE', wf, ttl)
  end
end

-- Step n of the workflow in KEYS[base] ended with `status` (succeeded, dead or cancelled):
-- count it, and enqueue what it releases: successors whose last predecessor it was (with
-- their input), or on death its failure handler. Acts once per step: a step that is no longer
-- 'queued' (ended already, cancelled with its workflow, or unknown) changes nothing.
-- `result`: the step's result (msgpack) on success; `failure`: the failure handler's input.
local function wf_step_ended(base, n, status, result, failure, ttl)
  local wf = KEYS[base]
  if redis.call('HGET', wf, 'st:' .. n) ~= 'queued' then return end
  local def = wf_def(wf, n)
  if not def then return end
  redis.call('HSET', wf, 'st:' .. n, status)
  local running = redis.call('HGET', wf, 'status') == 'running'
  if status == 'succeeded' then
    if def.keep and running then redis.call('HSET', wf, 'r:' .. n, result) end
    if running then
      for m in string.gmatch(def.next, '%d+') do
        if redis.call('HGET', wf, 'st:' .. m) == 'waiting'
            and redis.call('HINCRBY', wf, 'w:' .. m, -1) <= 0 then
          local mdef = wf_def(wf, m)
          local input = nil
          if mdef.input == '1' then
            input = result
          elseif mdef.input == 'L' then
            local fields = {}
            for p in string.gmatch(mdef.pre, '%d+') do fields[#fields + 1] = 'r:' .. p end
            local parts = redis.call('HMGET', wf, unpack(fields))
            for i = 1, #parts do
              if not parts[i] then parts[i] = string.char(192) end  -- nil: never expected
            end
            input = wf_array_header(#parts) .. table.concat(parts)
          end
          wf_push(wf, base, m, mdef, input)
        end
      end
    end
  elseif running then
    -- the workflow fails (or is cancelled): nothing that waits runs any more, but the failure
    -- handler of the step (else the workflow's on_error step), once
    redis.call('HSET', wf, 'status', status == 'cancelled' and 'cancelled' or 'failed')
    local handler = def.fail
    if handler == '' then handler = redis.call('HGET', wf, 'onerr') or '' end
    local count = tonumber(redis.call('HGET', wf, 'n'))
    local skipped = 0
    for i = 0, count - 1 do
      if redis.call('HGET', wf, 'st:' .. i) == 'waiting' then
        redis.call('HSET', wf, 'st:' .. i, 'skipped')
        redis.call('HDEL', wf, 'e:' .. i)
        skipped = skipped + 1
      end
    end
    if skipped > 0 then redis.call('HINCRBY', wf, 'left', -skipped) end
    if status == 'dead' and handler ~= ''
        and redis.call('HGET', wf, 'st:' .. handler) == 'standby' then
      redis.call('HINCRBY', wf, 'left', 1)
      wf_push(wf, base, handler, wf_def(wf, handler), failure)
    end
  end
  wf_left(wf, -1, ttl)
end
