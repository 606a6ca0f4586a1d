-- Cancel a running workflow: nothing that waits will run; steps enqueued but not delivered to
-- a worker yet are removed (with a "cancelled" record); steps a worker holds (running, or
-- retrying later) go on, and their end enqueues nothing more.
-- KEYS[1]  the workflow hash (layout: _workflow.lua)
-- KEYS[2..] three per workflow queue, in order: stream, entries hash, record bucket of the
--          workflow's step ids (they all share one id time)
-- ARGV[1]  group
-- ARGV[2]  record (status "cancelled")
-- ARGV[3]  record ttl ms (also the workflow's, once nothing of it runs any more)
-- ARGV[4..] events channel of each workflow queue, in order ('' none; as publish in _lib.lua)
-- returns  {status before, steps cancelled}: status 'running' when this call cancelled it;
--          '' when there is no such workflow
local wf = KEYS[1]
local status = redis.call('HGET', wf, 'status')
if not status then return {'', 0} end
if status ~= 'running' then return {status, 0} end
redis.call('HSET', wf, 'status', 'cancelled')
local group, record, ttl = ARGV[1], ARGV[2], ARGV[3]
local count = tonumber(redis.call('HGET', wf, 'n'))
local ended, cancelled = 0, 0
for i = 0, count - 1 do
  local st = redis.call('HGET', wf, 'st:' .. i)
  if st == 'waiting' or st == 'standby' then
    redis.call('HSET', wf, 'st:' .. i, 'cancelled')
    redis.call('HDEL', wf, 'e:' .. i)
    cancelled = cancelled + 1
    if st == 'waiting' then ended = ended + 1 end
  elseif st == 'queued' then
    local def = wf_def(wf, i)
    local stream, entries, bucket =
      KEYS[3 * def.queue - 1], KEYS[3 * def.queue], KEYS[3 * def.queue + 1]
    local entry = redis.call('HGET', entries, def.id)
    if entry then
      local ok, p = pcall(redis.call, 'XPENDING', stream, group, entry, entry, 1)
      local held = ok and p[1]
      if not held and #redis.call('XRANGE', stream, entry, entry) > 0 then
        redis.call('XDEL', stream, entry)
        redis.call('HDEL', entries, def.id)
        put_record(bucket, def.id, record, ttl)
        redis.call('HSET', wf, 'st:' .. i, 'cancelled')
        local channel = ARGV[3 + def.queue]
        if channel then publish(channel, cjson.encode({{def.id, 'cancelled'}})) end
        ended = ended + 1
        cancelled = cancelled + 1
      end
    end
  end
end
if ended > 0 then wf_left(wf, -ended, ttl) end
return {status, cancelled}
