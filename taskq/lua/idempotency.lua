-- Drop an Idempotency-Key claim, only while it still holds the caller's token (a request whose
-- enqueue failed frees its key for a retry, never another request's claim or stored id).
-- KEYS[1]  the claim ({prefix:queue}:idem:<task>:<key>)
-- ARGV[1]  the caller's pending token
-- returns  1 when deleted, 0 when the key holds something else (or nothing)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
