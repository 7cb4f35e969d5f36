//! The Lua scripts (shared/cluster.md §4, Appendices B and C). Each touches one hash tag, so it
//! is cluster-safe; Redis 7 replicates script effects, so `TIME` and `XADD *` inside are fine.
//! They are sent with `EVAL` (not `EVALSHA`): a script is a few hundred bytes, and `EVAL` needs no
//! per-node preloading that a failover to a fresh master would lose.

/// KEYS[1] user hash; ARGV[1] expected version ("0" when absent); ARGV[2..] field/value pairs,
/// an empty value deletes the field. Returns {1, new_v} or {0, current_v}.
pub const CAS_USER: &str = r#"
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return {0, tonumber(v)} end
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return {1, redis.call('HINCRBY', KEYS[1], 'v', 1)}
"#;

/// KEYS[1] token entry; ARGV[1] expected owner ("" = none), ARGV[2] new owner ("" = delete the
/// entry), ARGV[3] certificate, ARGV[4] the token. Returns 1 when changed, 0 when the owner was
/// not the expected one.
pub const CAS_OWNER: &str = r#"
local o = redis.call('HGET', KEYS[1], 'o') or ''
if o ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('HSET', KEYS[1], 'o', ARGV[2], 'c', ARGV[3], 'k', ARGV[4]) end
return 1
"#;

/// KEYS[1] stream, KEYS[2] its meta hash (same tag); ARGV[1] cap, ARGV[2] jobs in this entry,
/// ARGV[3..] entry fields. Returns the id, or nil when full: the caller learns at once.
pub const XADD_BOUNDED: &str = r#"
local queued = tonumber(redis.call('HGET', KEYS[2], 'jobs') or '0')
if queued + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return false end
redis.call('HINCRBY', KEYS[2], 'jobs', ARGV[2])
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
"#;

/// KEYS[1] stream, KEYS[2] meta; ARGV = entry ids. Deletes the entries and lowers `jobs` by the
/// number actually deleted (a second delete of the same id changes nothing).
pub const XDEL_DONE: &str = r#"
local n = redis.call('XDEL', KEYS[1], unpack(ARGV))
if n > 0 then redis.call('HINCRBY', KEYS[2], 'jobs', -n) end
return n
"#;

/// KEYS[1] certificate queue, KEYS[2] its meta; ARGV = entry ids. Acks them in the `senders`
/// group, deletes them and lowers `jobs` by the notifications each held (its `n` field), so a
/// second finish of the same id changes nothing.
pub const CERTQ_DONE: &str = r#"
local jobs = 0
local gone = {}
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e > 0 then
    local f = e[1][2]
    for j = 1, #f, 2 do
      if f[j] == 'n' then jobs = jobs + tonumber(f[j + 1]) end
    end
    gone[#gone + 1] = ARGV[i]
  end
end
redis.call('XACK', KEYS[1], 'senders', unpack(ARGV))
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
if jobs > 0 then redis.call('HINCRBY', KEYS[2], 'jobs', -jobs) end
return #gone
"#;

/// A certificate edited: KEYS[1] `pg:{c:<id>}:meta`; ARGV[1] the new version's fingerprint.
/// Clears the broken mark (the edited credentials get their try) and records which version is
/// current, so that a broken mark about an older one is refused (`PUBLISH_HEALTH`).
pub const CERT_EDITED: &str = r#"
redis.call('HSET', KEYS[1], 'cert_fp', ARGV[1])
return redis.call('HDEL', KEYS[1], 'broken', 'broken_reason')
"#;

/// The owner's health of a certificate: KEYS[1] `pg:{c:<id>}:meta`; ARGV[1] the fingerprint of
/// the version the vendor refused ("" = unknown), ARGV[2] "1" broken / "0" not, ARGV[3] the
/// reason, ARGV[4] paused_until. A broken mark about a version other than the current one (an
/// edit landed meanwhile) is not written. Returns 0 when it was refused so, else 1.
pub const PUBLISH_HEALTH: &str = r#"
local fresh = 1
if ARGV[2] == '1' then
  local fp = redis.call('HGET', KEYS[1], 'cert_fp')
  if fp and ARGV[1] ~= '' and fp ~= ARGV[1] then fresh = 0
  else redis.call('HSET', KEYS[1], 'broken', '1', 'broken_reason', ARGV[3]) end
else
  redis.call('HDEL', KEYS[1], 'broken', 'broken_reason')
end
redis.call('HSET', KEYS[1], 'paused_until', ARGV[4])
return fresh
"#;

/// Lease renew: KEYS[1] lease; ARGV[1] me, ARGV[2] ttl ms. 1 when still mine.
pub const LEASE_RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1
end
return 0
"#;

/// Certificate lease renewal: KEYS[1] `pg:{c:<id>}:owner`, KEYS[2] `pg:{c:<id>}:meta` (same tag);
/// ARGV[1] me, ARGV[2] ttl ms. The notifications queued (the depth metric, in the same request)
/// when the lease was mine, else -1.
pub const CERT_RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[2], 'jobs') or '0')
end
return -1
"#;

/// Lease release: KEYS[1] lease; ARGV[1] me. 1 when it was mine.
pub const LEASE_RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"#;

/// Global limiter option (§8, Appendix B): a reservation GCRA on the Redis server's clock.
/// KEYS[1] pg:{c:<cert>}:gcra; ARGV[1] qps, ARGV[2] burst (>= 1), ARGV[3] requests, ARGV[4] max
/// wait in µs, ARGV[5] the senders' timer tick in µs (`push::bucket::TICK`). The burst is at least
/// one tick's worth of the current rate, as a certificate's local token bucket holds: with less,
/// a fast certificate could start only one request per wake-up. Returns {granted 0|1, wait_us,
/// now_us}; a grant with wait_us > 0 is a reservation.
pub const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local qps = tonumber(ARGV[1])
local qty = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tat', 'factor')
local factor = tonumber(h[2]) or 1
local burst = math.max(tonumber(ARGV[2]), math.floor(qps * factor * tonumber(ARGV[5]) / 1000000))
local interval = 1000000 / (qps * factor)
local tat = tonumber(h[1]) or now
if tat < now then tat = now end
local start = tat - (burst - 1) * interval
if start < now then start = now end
local wait = start - now
if wait > max_wait then
  return {0, math.floor(wait), now}
end
local new_tat = tat + qty * interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', new_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((new_tat - now) / 1000) + 60000)
return {1, math.floor(wait), now}
"#;

/// What receipts said about some of one user's devices (diagnosis): KEYS[1]
/// `pg:{u:<user>}:rcpt`; ARGV[1] ttl ms, then per receipt four values: device, kind (`d`
/// delivered, `c` clicked, `i` invalid token), the vendor's message id ("" = none), unix ms.
/// A delivered or clicked receipt about another message than the one kept starts the device's
/// entry over (its invalid-token time stays), as `Outcomes::record_receipt` does. Writing the
/// same receipt again changes nothing: a re-post may run it twice.
pub const RECEIPTS_NOTE: &str = r#"
for i = 2, #ARGV, 4 do
  local dev, kind, msg, at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if kind ~= 'i' then
    local m = redis.call('HGET', KEYS[1], 'm:' .. dev) or ''
    if m ~= msg then
      if msg == '' then redis.call('HDEL', KEYS[1], 'm:' .. dev)
      else redis.call('HSET', KEYS[1], 'm:' .. dev, msg) end
      redis.call('HDEL', KEYS[1], 'd:' .. dev, 'c:' .. dev)
    end
  end
  redis.call('HSET', KEYS[1], kind .. ':' .. dev, at)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// Counts receipts once each: KEYS[1] `pg:{c:<id>}:rcpt` (receipt id → server ms), KEYS[2]
/// `pg:{c:<id>}:meta`; ARGV[1] how long ids are kept (ms), ARGV[2] how many at most, ARGV[3..]
/// pairs of receipt id and the figure it adds to (`receipts_delivered`, `receipts_clicked`).
/// A receipt whose id is kept already was counted (a vendor's re-post, or this request sent
/// again after its reply was lost) and adds nothing; the others add 1 to their figure, in the
/// same script, so an id is never kept without its count nor counted without its id. Returns
/// 1 (counted now) or 0 per pair.
pub const RECEIPTS_COUNT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - tonumber(ARGV[1])))
local new = {}
local added = {}
for i = 3, #ARGV, 2 do
  local n = redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i])
  new[#new + 1] = n
  if n == 1 then added[ARGV[i + 1]] = (added[ARGV[i + 1]] or 0) + 1 end
end
for f, n in pairs(added) do redis.call('HINCRBY', KEYS[2], f, n) end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return new
"#;

/// KEYS[1] node conns hash; ARGV[1] `user\0device`, ARGV[2] ConnId. Removes the field only if it
/// still names that connection (a newer login on the same node keeps its entry).
pub const CONN_REMOVE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"#;

/// Message id blocks: KEYS[1] pg:msgid; ARGV[1] floor (`now_millis << 12`, so ids keep growing
/// across a switch from embedded mode), ARGV[2] block size. Returns the block's end (exclusive).
pub const MSG_ID_BLOCK: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[2])
"#;

/// A node's new certificate figures, added exactly once: KEYS[1] `pg:{c:<id>}:meta`; ARGV[1] the
/// adding process's field (`add:<node>`), ARGV[2] the addition's sequence number (milliseconds,
/// increasing per process), ARGV[3] how long a process's last number is kept (ms), ARGV[4..]
/// figure/amount pairs. An addition whose number is not above the process's last one is a
/// retry of one already applied (its reply timed out): nothing is added again. Numbers of
/// processes silent for longer than ARGV[3] are dropped, so the hash does not grow with every
/// restart. Returns the hash (the totals).
pub const FIGURES_ADD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HGET', KEYS[1], ARGV[1])
local last = tonumber(v and string.match(v, '^(%d+)') or '0') or 0
if tonumber(ARGV[2]) > last then
  for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f %.0f', math.max(last, tonumber(ARGV[2])), now))
local all = redis.call('HGETALL', KEYS[1])
local keep = now - tonumber(ARGV[3])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 4) == 'add:' then
    local seen = tonumber(string.match(all[i + 1], ' (%d+)$') or '0') or 0
    if seen < keep then redis.call('HDEL', KEYS[1], all[i]) end
  end
end
return all
"#;
