//! The Lua script that leases tokens from (and gives tokens back to) one budget's shared buckets
//! in Redis, in one atomic call, and the keys it works on.
//!
//! Each budget (a client IP in the default scope, or in one route's own scope) has two token
//! buckets in Redis (messages and bytes), each a hash of `tokens` and `ts`
//! (Redis server time in microseconds, so agents' clocks never matter). A call refills a bucket
//! for the time since `ts`, adds what the agent gives back (never above the capacity), grants
//! `min(wanted, whole tokens there)` and expires the key once it would be full again anyway.

use redis::{Script, ScriptInvocation};

use super::entry::{IpLimits, LeaseWant};
use super::BudgetKey;

/// `KEYS[1]`: the budget's message bucket, `KEYS[2]`: its byte bucket. `ARGV`, message bucket then
/// byte bucket: rate per second, capacity, tokens wanted, tokens given back. Returns
/// `{message tokens granted, byte tokens granted}`; a bucket whose rate is 0 is left alone.
pub const LEASE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function lease(key, rate, capacity, want, give)
  if rate <= 0 then return 0 end
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  if now > ts then
    tokens = tokens + (now - ts) * rate / 1000000
    ts = now
  end
  tokens = math.min(capacity, tokens + give)
  local granted = math.max(0, math.min(want, math.floor(tokens)))
  tokens = tokens - granted
  redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.0f', ts))
  redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
  return granted
end
return {
  lease(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])),
  lease(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
}
"#;

/// Prefix of every key the agent writes.
pub const KEY_PREFIX: &str = "sentinel-ws:ip:";

/// The longest IP text used in a key (an IPv6 address with a zone fits; a longer value from the
/// proxy is cut, never stored whole).
const MAX_IP_IN_KEY: usize = 64;
/// The longest route name used in a key: a route's name is at most 64 bytes of letters, digits,
/// `-`, `_`, `.`, or its `match` glob (at most 256 bytes, no braces), so nothing real is cut.
const MAX_SCOPE_IN_KEY: usize = 256;

/// The two bucket keys of a budget: `sentinel-ws:ip:{IP}:messages` for the default scope (the
/// keys every agent version uses), `sentinel-ws:ip:route:NAME:{IP}:messages` for a route's own.
/// The IP is in braces so that both keys hash to one cluster slot. Formatted per Redis call,
/// never per frame.
pub fn keys(key: &BudgetKey) -> [String; 2] {
    let ip = crate::util::cut(&key.ip, MAX_IP_IN_KEY);
    let scope = if key.scope.is_empty() {
        String::new()
    } else {
        format!("route:{}:", crate::util::cut(&key.scope, MAX_SCOPE_IN_KEY))
    };
    [
        format!("{KEY_PREFIX}{scope}{{{ip}}}:messages"),
        format!("{KEY_PREFIX}{scope}{{{ip}}}:bytes"),
    ]
}

/// One lease call: take `want` and give back `give_back` for the budget `key` under `limits`.
pub fn invocation<'s>(
    script: &'s Script,
    key: &BudgetKey,
    limits: &IpLimits,
    want: LeaseWant,
    give_back: LeaseWant,
) -> ScriptInvocation<'s> {
    let [message_key, byte_key] = keys(key);
    let (message_rate, message_capacity) = limits.message_bucket(1.0).unwrap_or((0.0, 0.0));
    let (byte_rate, byte_capacity) = limits.byte_bucket(1.0).unwrap_or((0.0, 0.0));
    let mut call = script.key(message_key);
    call.key(byte_key)
        .arg(message_rate)
        .arg(message_capacity)
        .arg(want.messages)
        .arg(give_back.messages)
        .arg(byte_rate)
        .arg(byte_capacity)
        .arg(want.bytes)
        .arg(give_back.bytes);
    call
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str, ip: &str) -> BudgetKey {
        BudgetKey {
            scope: scope.into(),
            ip: ip.into(),
        }
    }

    #[test]
    fn keys_share_a_slot_and_bound_the_ip() {
        let [m, b] = keys(&key("", "203.0.113.9"));
        assert_eq!(m, "sentinel-ws:ip:{203.0.113.9}:messages");
        assert_eq!(b, "sentinel-ws:ip:{203.0.113.9}:bytes");
        let [long, _] = keys(&key("", &"9".repeat(10_000)));
        assert!(long.len() < 100, "{}", long.len());
    }

    #[test]
    fn a_route_of_its_own_has_keys_of_its_own_in_the_ip_slot() {
        let [m, b] = keys(&key("chat", "203.0.113.9"));
        assert_eq!(m, "sentinel-ws:ip:route:chat:{203.0.113.9}:messages");
        assert_eq!(b, "sentinel-ws:ip:route:chat:{203.0.113.9}:bytes");
        assert_ne!(keys(&key("trading", "203.0.113.9"))[0], m);
        let [long, _] = keys(&key(&"r".repeat(10_000), "203.0.113.9"));
        assert!(long.len() < 350, "{}", long.len());
    }
}
