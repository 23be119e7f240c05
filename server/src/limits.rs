//! Limits that keep one client from taking what others need:
//!
//! - rate limits per client and per workspace (GCRA through `governor`), answered with 429 and
//!   `Retry-After`;
//! - a cap on open connections per client ([`ConnectionCaps`]), enforced in the accept loop;
//! - which address a call comes from ([`client_ip`]): the TCP peer, or, when the peer is a
//!   trusted proxy, the address that proxy forwarded;
//! - the console's login attempt limits ([`login`]).
//!
//! Every per-client key goes through [`client_key`]: an IPv6 client is one /64, because a single
//! subscriber or server is routinely given a whole /64 and could otherwise rotate through
//! millions of addresses, each with a fresh bucket.
//!
//! Every keyed limiter in the process keeps its buckets in a [`BoundedStore`]: at most a fixed
//! number of keys (a hard bound on entries, so on memory), a refused check never adds a key, and
//! keys arriving while the store is full share one overflow bucket until pruning frees room. The
//! connection counts hold one entry per client with an open connection, so they are bounded by
//! `--max-connections`.

pub mod login;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The key a client is counted under: an IPv4 address as is (an IPv4-mapped IPv6 address is
/// the IPv4 address it carries), an IPv6 address reduced to its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded keyed state

/// Shards of a [`BoundedStore`]: contention stays low with many workers, and each shard's bound
/// is checked in O(1) under its own lock.
const SHARDS: usize = 16;

/// A governor state store with a hard bound on its keys.
///
/// Each key's state is the GCRA's theoretical arrival time (8 bytes) in a sharded map. A key is
/// stored only once a check for it has passed, so a refused attempt leaves nothing behind. While a
/// shard is full, keys that are not in it share one overflow bucket: an attacker who fills the
/// table with fresh keys is still limited (all together), and keys already tracked keep their own
/// buckets. [`RateLimiter::retain_recent`] drops fully recovered keys, freeing room.
///
/// A handle: clones share one table (keep one to [`forget`](BoundedStore::forget) keys of a
/// limiter built on it).
pub struct BoundedStore<K>(Arc<BoundedInner<K>>);

struct BoundedInner<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    per_shard: usize,
    overflow: Mutex<Option<u64>>,
    hasher: std::hash::RandomState,
    /// When the limiter over this store started (its states are nanoseconds since then), set
    /// just after it was made, so `start.elapsed()` never runs ahead of the limiter's own clock.
    start: std::sync::OnceLock<std::time::Instant>,
}

struct Shard<K> {
    map: HashMap<K, u64>,
    /// When a full shard last dropped its recovered keys.
    last_sweep: Option<std::time::Instant>,
}

impl<K> Default for Shard<K> {
    fn default() -> Self {
        Shard {
            map: HashMap::new(),
            last_sweep: None,
        }
    }
}

/// How often a full shard may look for recovered keys to drop (a scan of the shard).
const SWEEP_EVERY: Duration = Duration::from_millis(50);

impl<K> std::fmt::Debug for BoundedStore<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedStore")
            .field("capacity", &(self.0.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl<K> Clone for BoundedStore<K> {
    fn clone(&self) -> Self {
        BoundedStore(Arc::clone(&self.0))
    }
}

/// A keyed rate limiter whose keys are bounded ([`BoundedStore`]).
pub type BoundedLimiter<K> = RateLimiter<K, BoundedStore<K>, DefaultClock>;

/// A keyed limiter with `quota`, holding at most `max_keys` keys (rounded up to a multiple of
/// the shard count).
pub fn bounded_limiter<K: Hash + Eq + Clone>(quota: Quota, max_keys: usize) -> BoundedLimiter<K> {
    limiter_on(quota, BoundedStore::new(max_keys))
}

/// A keyed limiter with `quota` over `store` (keep a clone of the store to forget keys).
pub fn limiter_on<K: Hash + Eq + Clone>(quota: Quota, store: BoundedStore<K>) -> BoundedLimiter<K> {
    let limiter = RateLimiter::new(quota, store.clone(), DefaultClock::default());
    let _ = store.0.start.set(std::time::Instant::now());
    limiter
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(max_keys: usize) -> BoundedStore<K> {
        BoundedStore(Arc::new(BoundedInner {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            overflow: Mutex::new(None),
            hasher: std::hash::RandomState::new(),
            start: std::sync::OnceLock::new(),
        }))
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, Shard<K>> {
        let i = (self.0.hasher.hash_one(key) as usize) % SHARDS;
        // A std Mutex: held for one map operation, never across an await.
        self.0.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets `key`'s state: its next check starts from a full bucket.
    pub fn forget(&self, key: &K) {
        self.shard(key).map.remove(key);
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = self.shard(key);
        if let Some(tat) = shard.map.get_mut(key) {
            let (t, next) = f(Some(Nanos::from(*tat)))?;
            *tat = next.as_u64();
            return Ok(t);
        }
        if shard.map.len() >= self.0.per_shard
            && let Some(start) = self.0.start.get()
            && shard
                .last_sweep
                .is_none_or(|at| at.elapsed() >= SWEEP_EVERY)
        {
            // Full: drop the keys whose buckets have refilled (a state in the past is a full
            // bucket), so a flood of one-off keys does not leave new clients sharing the
            // overflow bucket until the next prune.
            let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            shard.map.retain(|_, tat| *tat > now);
            shard.last_sweep = Some(std::time::Instant::now());
        }
        if shard.map.len() < self.0.per_shard {
            let (t, next) = f(None)?;
            shard.map.insert(key.clone(), next.as_u64());
            return Ok(t);
        }
        drop(shard);
        let mut overflow = self.0.overflow.lock().unwrap_or_else(|e| e.into_inner());
        let (t, next) = f(overflow.map(Nanos::from))?;
        *overflow = Some(next.as_u64());
        Ok(t)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        for shard in &self.0.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.map.retain(|_, tat| *tat > drop_below);
            // A flood's worth of capacity is given back once it has passed.
            if shard.map.capacity() > 2 * shard.map.len() + 64 {
                shard.map.shrink_to_fit();
            }
        }
        let mut overflow = self.0.overflow.lock().unwrap_or_else(|e| e.into_inner());
        if overflow.is_some_and(|tat| tat <= drop_below) {
            *overflow = None;
        }
    }

    fn len(&self) -> usize {
        self.0
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keys each identify limiter holds at most. An entry is about 50 bytes with the map's own
/// overhead (an address or a shared app id and 8 bytes of state), so each map stays under about
/// 15 MB however many clients arrive; past it, new clients share one overflow bucket until
/// pruning (every 10 s) frees room.
pub const MAX_TRACKED_CLIENTS: usize = 200_000;

// ---------------------------------------------------------------------------------------------
// Identify limits

pub struct Limits {
    per_ip: Option<BoundedLimiter<IpAddr>>,
    per_app: Option<BoundedLimiter<std::sync::Arc<str>>>,
    /// Lets a few lines a second through for events a client can repeat at will (a refused
    /// origin), so a flood of them cannot flood the log; the metrics still count every one.
    log_gate: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_ip", &self.per_ip.is_some())
            .field("per_app", &self.per_app.is_some())
            .finish_non_exhaustive()
    }
}

/// `per_second` sustained with a burst of twice that; `None` when 0 (unlimited).
fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// Log lines per second for repeatable events, with a burst of 20.
const LOG_LINES_PER_SECOND: NonZeroU32 = NonZeroU32::new(5).unwrap();
const LOG_BURST: NonZeroU32 = NonZeroU32::new(20).unwrap();

impl Limits {
    pub fn new(per_ip: u32, per_app: u32) -> Limits {
        Limits {
            per_ip: quota(per_ip).map(|q| bounded_limiter(q, MAX_TRACKED_CLIENTS)),
            per_app: quota(per_app).map(|q| bounded_limiter(q, MAX_TRACKED_CLIENTS)),
            log_gate: RateLimiter::direct(
                Quota::per_second(LOG_LINES_PER_SECOND).allow_burst(LOG_BURST),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when the client at `ip` is over its limit (IPv6: its /64).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        match &self.per_ip {
            Some(l) => l
                .check_key(&client_key(ip))
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// `Err(wait)` when the workspace is over its limit.
    /// `app` is the workspace's shared id ([`crate::workspace::Workspace::key`]), so a check
    /// clones a pointer rather than allocating the id.
    pub fn check_app(&self, app: &std::sync::Arc<str>) -> Result<(), Duration> {
        match &self.per_app {
            Some(l) => l
                .check_key(app)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// Whether a rate-limited log line may be written now.
    pub fn may_log(&self) -> bool {
        self.log_gate.check().is_ok()
    }

    /// Forgets keys whose limit has fully recovered, so memory follows active clients only.
    pub fn prune(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_app {
            l.retain_recent();
        }
    }

    /// Clients with a rate-limit bucket (tests: memory follows /64s, not addresses).
    pub fn tracked_clients(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Open connections per client

/// Open connections per client key ([`client_key`]), capped. A slot is held by the
/// [`ConnectionSlot`] it returns and given back when that is dropped (the connection ended).
///
/// The map holds an entry only while its client has a connection open, and every connection
/// holds one of the `--max-connections` permits first, so it never has more entries than that.
#[derive(Debug, Clone)]
pub struct ConnectionCaps {
    /// 0 = no cap.
    max_per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of one client; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionCaps {
    pub fn new(max_per_client: usize) -> ConnectionCaps {
        ConnectionCaps {
            max_per_client,
            open: Arc::default(),
        }
    }

    /// A slot for a new connection from `peer`, or `None` when that client already has the
    /// most it may have open. (A std `Mutex` is fine: held for one hash map update, never across
    /// an await.)
    pub fn try_open(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        let key = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if self.max_per_client != 0 && *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            key,
            open: Arc::clone(&self.open),
        })
    }

    /// Connections open from `peer`'s client key.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&client_key(peer)).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                // Memory follows open connections only.
                open.remove(&self.key);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client's address behind trusted proxies

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Whether `ip` is one of the trusted proxies (an IPv4-mapped IPv6 address counts as its IPv4).
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

/// The address a request comes from.
///
/// The TCP `peer` unless it is a trusted proxy. Behind trusted proxies, the forwarded chain
/// (`X-Forwarded-For`, or `Forwarded: for=` when there is no `X-Forwarded-For`) is read from the
/// right, where the nearest proxy appended what it saw, and the first address that is not itself
/// a trusted proxy is the client: anything to its left was written by that client and proves
/// nothing. A chain made only of trusted proxies gives its left-most address. Whatever cannot be
/// read (no header, an entry that is not an IP address such as `unknown` or an obfuscated
/// identifier) gives the peer: a header is never half-trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let chain = if headers.contains_key(X_FORWARDED_FOR) {
        forwarded_chain(headers, &X_FORWARDED_FOR, xff_entries)
    } else {
        forwarded_chain(headers, &FORWARDED, forwarded_entries)
    };
    let Some(chain) = chain else {
        return peer;
    };
    let mut leftmost = None;
    for entry in chain.iter().rev() {
        let Some(ip) = entry else {
            return peer;
        };
        if !is_trusted(*ip, trusted) {
            return *ip;
        }
        leftmost = Some(*ip);
    }
    leftmost.unwrap_or(peer)
}

/// Every entry of every `name` header, left to right (several header lines form one list, in
/// order); an entry that is not an address is `None`. `None` when the header is absent or not
/// text.
fn forwarded_chain(
    headers: &HeaderMap,
    name: &HeaderName,
    entries: fn(&str, &mut Vec<Option<IpAddr>>),
) -> Option<Vec<Option<IpAddr>>> {
    let mut chain = Vec::new();
    for value in headers.get_all(name) {
        entries(value.to_str().ok()?, &mut chain);
    }
    (!chain.is_empty()).then_some(chain)
}

fn xff_entries(value: &str, out: &mut Vec<Option<IpAddr>>) {
    out.extend(value.split(',').map(|e| parse_node(e.trim())));
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`.
fn forwarded_entries(value: &str, out: &mut Vec<Option<IpAddr>>) {
    for element in value.split(',') {
        let node = element.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
        });
        // An element without `for=` says nothing about the client: unreadable.
        out.push(node.and_then(|n| parse_node(n.trim_matches('"'))));
    }
}

/// `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:8080`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_limited_with_a_wait() {
        let limits = Limits::new(5, 0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..10 {
            assert!(limits.check_ip(ip).is_ok());
        }
        let wait = limits.check_ip(ip).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(limits.check_ip(other).is_ok(), "limits are per IP");
        assert!(
            limits.check_app(&std::sync::Arc::from("app_x")).is_ok(),
            "0 means unlimited"
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let limits = Limits::new(5, 0);
        // Ten different addresses of one /64 spend one bucket of 10 (burst)...
        for i in 0..10u16 {
            let a = format!("2001:db8:1:2:{i:x}::{:x}", i * 7 + 1);
            assert!(limits.check_ip(ip(&a)).is_ok(), "{a}");
        }
        assert!(
            limits
                .check_ip(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
                .is_err(),
            "an eleventh address in the same /64 is limited"
        );
        // ...while the neighbouring /64 has its own.
        assert!(limits.check_ip(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(limits.tracked_clients(), 2, "memory follows /64s");
        // IPv4 stays per address, also when it arrives IPv4-mapped.
        for _ in 0..10 {
            assert!(limits.check_ip(ip("192.0.2.1")).is_ok());
        }
        assert!(limits.check_ip(ip("::ffff:192.0.2.1")).is_err());
        assert!(limits.check_ip(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn client_key_masks_ipv6_to_its_64() {
        assert_eq!(
            client_key(ip("2001:db8:aa:bb:1:2:3:4")),
            ip("2001:db8:aa:bb::")
        );
        assert_eq!(client_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(client_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }

    #[test]
    fn prune_forgets_recovered_clients() {
        let limits = Limits::new(1000, 0);
        for i in 0..100u16 {
            let a = format!("2001:db8:{i:x}::1");
            limits.check_ip(ip(&a)).unwrap();
        }
        assert_eq!(limits.tracked_clients(), 100);
        // One call out of a burst of 2000 recovers within 1 ms.
        std::thread::sleep(Duration::from_millis(20));
        limits.prune();
        assert_eq!(limits.tracked_clients(), 0);
    }

    #[test]
    fn a_flood_of_unique_keys_stays_within_the_bound() {
        let quota = Quota::per_hour(NonZeroU32::new(1).unwrap());
        let limiter: BoundedLimiter<u64> = bounded_limiter(quota, 1_000);
        let cap = limiter.len() + 1_000usize.div_ceil(SHARDS) * SHARDS;
        // A key already tracked before the flood keeps its own bucket through it.
        assert!(limiter.check_key(&u64::MAX).is_ok());
        let mut passed = 0;
        for k in 0..1_000_000u64 {
            passed += usize::from(limiter.check_key(&k).is_ok());
            assert!(limiter.len() <= cap, "{} keys after {k}", limiter.len());
        }
        assert!(limiter.len() <= cap);
        // Past the bound, new keys shared one bucket: at most one burst got through it, beyond
        // the keys that found room.
        assert!(passed <= cap + 1, "{passed} passed");
        assert!(limiter.check_key(&u64::MAX).is_err(), "own bucket, spent");
        // Pruning gives the room back once the buckets have recovered.
        let quota = Quota::per_second(NonZeroU32::new(1000).unwrap());
        let limiter: BoundedLimiter<u64> = bounded_limiter(quota, 100);
        for k in 0..10_000 {
            let _ = limiter.check_key(&k);
        }
        assert!(limiter.len() <= 112);
        std::thread::sleep(Duration::from_millis(20));
        limiter.retain_recent();
        assert_eq!(limiter.len(), 0);
        assert!(limiter.check_key(&7).is_ok());
    }

    #[test]
    fn a_full_table_drops_recovered_keys_before_sharing_the_overflow_bucket() {
        // One cell a millisecond: a key used once has recovered a millisecond later.
        let quota = Quota::per_second(NonZeroU32::new(1000).unwrap());
        let limiter: BoundedLimiter<u64> = bounded_limiter(quota, 1_600);
        for k in 0..1_600 {
            assert!(limiter.check_key(&k).is_ok());
        }
        std::thread::sleep(Duration::from_millis(60));
        // 1,600 new one-off keys, none refused: each full shard made room by dropping recovered
        // keys. Without that, all would share the overflow bucket (a burst of 1,000) and some
        // 600 be refused.
        for k in 10_000..11_600 {
            assert!(limiter.check_key(&k).is_ok(), "{k}");
        }
        assert!(limiter.len() <= 1_600);
        assert!(
            limiter.len() > 1_000,
            "the new keys have slots of their own"
        );
    }

    #[test]
    fn a_refused_check_stores_nothing() {
        let quota = Quota::per_hour(NonZeroU32::new(1).unwrap());
        let limiter: BoundedLimiter<u64> = bounded_limiter(quota, SHARDS);
        // Fill every shard's single slot...
        let mut k = 0;
        while limiter.len() < SHARDS {
            let _ = limiter.check_key(&k);
            k += 1;
        }
        // ...then the overflow bucket's one cell goes, and refused keys leave nothing behind.
        let before = limiter.len();
        let refused = (k..k + 100)
            .filter(|k| limiter.check_key(k).is_err())
            .count();
        assert!(refused >= 99);
        assert_eq!(limiter.len(), before);
    }

    #[test]
    fn identify_limiters_are_bounded() {
        let limits = Limits::new(1, 1);
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50_000) {
            let _ = limits.check_ip(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limits.tracked_clients() <= MAX_TRACKED_CLIENTS.div_ceil(SHARDS) * SHARDS);
    }

    #[test]
    fn connection_caps_count_per_client_and_free_on_drop() {
        let caps = ConnectionCaps::new(2);
        let a = caps.try_open(ip("10.0.0.1")).unwrap();
        let b = caps.try_open(ip("10.0.0.1")).unwrap();
        assert!(caps.try_open(ip("10.0.0.1")).is_none());
        assert!(
            caps.try_open(ip("::ffff:10.0.0.1")).is_none(),
            "mapped = same"
        );
        let other = caps.try_open(ip("10.0.0.2")).unwrap();
        // One /64 is one client.
        let v6a = caps.try_open(ip("2001:db8::1")).unwrap();
        let v6b = caps.try_open(ip("2001:db8::2")).unwrap();
        assert!(caps.try_open(ip("2001:db8::3")).is_none());
        assert!(caps.try_open(ip("2001:db8:0:1::1")).is_some());
        drop(a);
        assert_eq!(caps.open_from(ip("10.0.0.1")), 1);
        let _c = caps.try_open(ip("10.0.0.1")).unwrap();
        drop((b, other, v6a, v6b));
        assert_eq!(
            caps.open.lock().unwrap().len(),
            1,
            "closed clients are forgotten"
        );
        let unlimited = ConnectionCaps::new(0);
        let held: Vec<_> = (0..1000)
            .map(|_| unlimited.try_open(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(unlimited.open_from(ip("10.0.0.1")), held.len());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.8"),
        ]);
        let peer = ip("203.0.113.5");
        assert_eq!(client_ip(peer, &h, &[]), peer, "no trusted proxies");
        assert_eq!(client_ip(peer, &h, &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_wins() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let lb = ip("10.0.0.2");
        // The client put a fake address first; the balancer appended what it saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("198.51.100.7"));
        // Two proxies: the inner one (10.1.2.3) appended the outer one's address.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("198.51.100.7"));
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7:5555, 10.1.2.3"),
        ]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("198.51.100.7"));
        // A chain of trusted addresses only: the client is inside; take the left-most.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.2.3")]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("10.9.9.9"));
        // IPv6 entries, bracketed or not, and a trusted IPv6 peer.
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:443, fd00::1")]);
        assert_eq!(client_ip(ip("fd00::2"), &h, &trusted), ip("2001:db8::7"));
        // Forwarded (RFC 7239) when there is no X-Forwarded-For.
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::9]:4711";proto=https, For=10.1.2.3;by=10.0.0.2"#,
        )]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("2001:db8::9"));
        // No header at all: the peer.
        assert_eq!(client_ip(lb, &HeaderMap::new(), &trusted), lb);
    }

    #[test]
    fn a_malformed_chain_gives_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let lb = ip("10.0.0.2");
        for bad in ["not-an-ip", "198.51.100.7, garbage, 10.1.2.3", "", " , "] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(client_ip(lb, &h, &trusted), lb, "{bad:?}");
        }
        for bad in ["for=unknown", "for=_hidden", "proto=https", "for=\"[::1\""] {
            let h = headers(&[("forwarded", bad)]);
            assert_eq!(client_ip(lb, &h, &trusted), lb, "{bad:?}");
        }
        // Garbage left of the nearest untrusted hop is the client's own text: not read.
        let h = headers(&[("x-forwarded-for", "garbage, 198.51.100.7")]);
        assert_eq!(client_ip(lb, &h, &trusted), ip("198.51.100.7"));
        // A header that is not text.
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.\xff").unwrap(),
        );
        assert_eq!(client_ip(lb, &h, &trusted), lb);
    }
}
