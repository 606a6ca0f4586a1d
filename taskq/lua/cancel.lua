-- Cancel a task wherever it is: delayed (removed), queued (its entry deleted before any
-- delivery), or running (a cancel request the owning worker acts on). A workflow step removed
-- while delayed or queued also ends its workflow, here: the step is counted 'cancelled' and
-- the workflow becomes 'cancelled' (its waiting steps skipped; see _workflow.lua).
-- KEYS[1]  stream
-- KEYS[2]  delayed (sorted set)
-- KEYS[3]  payloads (hash)
-- KEYS[4]  entries (hash)
-- KEYS[5]  cancels (hash)
-- KEYS[6]  record bucket of the task
-- KEYS[7..] (only for a workflow step) its workflow hash, then the stream and entries hash of
--          each workflow queue (see _workflow.lua)
-- ARGV[1]  group
-- ARGV[2]  task id
-- ARGV[3]  entry id implied by the task id ('' if none)
-- ARGV[4]  record (status "cancelled")
-- ARGV[5]  record ttl ms
-- ARGV[6]  events channel (a leading "!": sharded, see publish in _lib.lua)
-- ARGV[7]  the record filled from the task's message (its name, arguments, enqueue time,
--          attempts), or '': stored instead of ARGV[4] when the message found is ARGV[8]
-- ARGV[8]  the message ARGV[7] was made from (the caller read it just before), or ''
-- ARGV[9]  (optional) the step's index in its workflow (with KEYS[7..]), or '' when the
--          caller knows the task is no workflow step
-- returns  'delayed' | 'queued' | 'running' | 'unknown'; 'delayed' and 'queued' are followed by
--          a tab and the task's unique key when its message holds one (the caller releases it);
--          or, without ARGV[9], when the task to remove is a workflow step,
--          {'step', workflow id, step index, queue, ...} and nothing was done (the caller
--          calls again with the workflow's keys: every key a script touches is in KEYS); and
--          where Lua has no cmsgpack (the memory:// stand-in), {'payload', message} for the
--          caller to tell, nothing done
local id = ARGV[2]
local with_wf = KEYS[7] ~= nil
local checked = ARGV[9] ~= nil
-- What the message says: its unique key ('' or a tab and the key) and, unless the caller
-- checked already, what makes it call again (see 'returns').
-- (cmsgpack is in every Redis; the memory:// stand-in lacks it: its keys are taken over)
local function peek(payload)
  if not payload then return '', nil end
  if not cmsgpack then
    if checked then return '', nil end
    return '', {'payload', payload}
  end
  local ok, msg = pcall(cmsgpack.unpack, payload)
  if not ok or type(msg) ~= 'table' then return '', nil end
  local u = type(msg['u']) == 'string' and ('\t' .. msg['u']) or ''
  local w = msg['w']
  if not checked and type(w) == 'table' and type(w[1]) == 'string'
      and type(w[2]) == 'number' and type(w[4]) == 'table' then
    local out = {'step', w[1], tostring(w[2])}
    for _, q in ipairs(w[4]) do out[#out + 1] = q end
    return u, out
  end
  return u, nil
end
local function finish(message)
  local record = ARGV[4]
  if ARGV[7] ~= '' and message == ARGV[8] then record = ARGV[7] end
  put_record(KEYS[6], id, record, ARGV[5])
  publish(ARGV[6], cjson.encode({{id, 'cancelled'}}))
  if with_wf then
    local def = wf_def(KEYS[7], ARGV[9])
    if def and def.id == id then wf_step_ended(7, ARGV[9], 'cancelled', nil, nil, ARGV[5]) end
  end
end
if redis.call('ZSCORE', KEYS[2], id) then
  local payload = redis.call('HGET', KEYS[3], id)
  local u, step = peek(payload)
  if step then return step end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  finish(payload)
  return 'delayed' .. u
end
local entry = redis.call('HGET', KEYS[4], id) or ARGV[3]
if entry == '' then return 'unknown' end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
if ok and p[1] then
  redis.call('HSET', KEYS[5], id, now_ms())
  return 'running'
end
local rows = redis.call('XRANGE', KEYS[1], entry, entry)
if #rows > 0 then
  local u, step, body, message = '', nil, rows[1][2], nil
  for j = 1, #body, 2 do
    if body[j] == 'm' then message = body[j + 1]; u, step = peek(message) end
  end
  if step then return step end
  redis.call('XDEL', KEYS[1], entry)
  redis.call('HDEL', KEYS[4], id)
  finish(message)
  return 'queued' .. u
end
return 'unknown'
