//! The console's login attempt limits (see [`LoginLimits`]), beside the identify path's limits
//! whose bounded limiters they use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::Quota;
use sha2::{Digest, Sha256};

use super::{BoundedLimiter, BoundedStore, bounded_limiter, client_key, limiter_on};

/// Login attempt limits, kept in memory per verifier instance (with N instances behind a
/// balancer an attacker gets at most N times the budget, which argon2's cost keeps small).
///
/// Every bucket is keyed by the client address the identify path uses (`--trusted-proxy`
/// aware, IPv6 by /64) or by a SHA-256 of the normalised email, so a key is 32 bytes whatever
/// was posted; each map has a hard bound on its keys ([`BoundedStore`]).
///
/// A client that logged in to an account (in the last 30 days, on this instance) is *known* to
/// it. A known client's attempts on that account spend only a bucket of its own (5 at once, then
/// one a minute, reset by a success), which only successful logins put keys in: floods from
/// elsewhere, however many addresses they use, cannot fill it or spend it, so they cannot lock the
/// owner out of the address they use. Every other attempt spends, in order (a refusal stops
/// there and touches nothing after it):
/// - per client: 20 at once, then one every 6 s (one office behind a NAT);
/// - per (account, client): 5 at once, then one a minute;
/// - per account: 100 at once, then one every 30 s, so guessing one password from many
///   addresses stays slow.
pub struct LoginLimits {
    per_client: BoundedLimiter<IpAddr>,
    per_account_client: BoundedLimiter<[u8; 32]>,
    /// `per_account_client`'s table, to reset a pair's count after a success.
    account_client_store: BoundedStore<[u8; 32]>,
    per_account: BoundedLimiter<[u8; 32]>,
    /// Known pairs' own bucket, and its table.
    per_known: BoundedLimiter<[u8; 32]>,
    known_store: BoundedStore<[u8; 32]>,
    /// Per account, up to [`KNOWN_PER_ACCOUNT`] clients that logged in to it, and when.
    known: Mutex<KnownClients>,
}

/// Account key -> the clients that logged in to it, and when.
type KnownClients = HashMap<[u8; 32], Vec<(IpAddr, Instant)>>;

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimits")
    }
}

const CLIENT_BURST: u32 = 20;
const CLIENT_EVERY: Duration = Duration::from_secs(6);
const ACCOUNT_CLIENT_BURST: u32 = 5;
const ACCOUNT_CLIENT_EVERY: Duration = Duration::from_secs(60);
const ACCOUNT_BURST: u32 = 100;
const ACCOUNT_EVERY: Duration = Duration::from_secs(30);
/// How long a successful login makes its client known to the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Clients remembered per account (the oldest is forgotten first).
const KNOWN_PER_ACCOUNT: usize = 16;
/// Accounts with known clients remembered at most.
const MAX_KNOWN_ACCOUNTS: usize = 10_000;
/// Keys each login limiter map holds at most (32-byte keys: a few MB each).
pub const MAX_LOGIN_KEYS: usize = 100_000;

fn quota(burst: u32, every: Duration) -> Quota {
    Quota::with_period(every)
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::new(burst).expect("a non-zero burst"))
}

impl Default for LoginLimits {
    fn default() -> Self {
        let account_client_store = BoundedStore::new(MAX_LOGIN_KEYS);
        let known_store = BoundedStore::new(KNOWN_PER_ACCOUNT * MAX_KNOWN_ACCOUNTS);
        let pair_quota = quota(ACCOUNT_CLIENT_BURST, ACCOUNT_CLIENT_EVERY);
        LoginLimits {
            per_client: bounded_limiter(quota(CLIENT_BURST, CLIENT_EVERY), MAX_LOGIN_KEYS),
            per_account_client: limiter_on(pair_quota, account_client_store.clone()),
            account_client_store,
            per_account: bounded_limiter(quota(ACCOUNT_BURST, ACCOUNT_EVERY), MAX_LOGIN_KEYS),
            per_known: limiter_on(pair_quota, known_store.clone()),
            known_store,
            known: Mutex::default(),
        }
    }
}

/// An attempt the limits let through; pass it to [`LoginLimits::succeeded`] when the password
/// was right.
#[derive(Debug)]
pub struct LoginAttempt {
    account: [u8; 32],
    client: IpAddr,
    pair: [u8; 32],
}

/// The fixed-size key of an email: SHA-256 of its trimmed, lower-cased form.
fn account_key(email: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"dropfix-login-account\0");
    h.update(email.trim().to_lowercase().as_bytes());
    h.finalize().into()
}

fn account_client_key(account: &[u8; 32], client: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(account);
    match client {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    h.finalize().into()
}

impl LoginLimits {
    fn known(&self) -> std::sync::MutexGuard<'_, KnownClients> {
        // A std Mutex: held for a lookup or an update of one account's short list.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt for `email` from `client` may be checked, spending it from the
    /// buckets above. `None` when it is over a limit (it is then not checked at all).
    /// Callers refuse emails longer than
    /// [`MAX_EMAIL_BYTES`](crate::console::session::MAX_EMAIL_BYTES) before asking.
    pub fn attempt(&self, email: &str, client: IpAddr) -> Option<LoginAttempt> {
        let client = client_key(client);
        let account = account_key(email);
        let pair = account_client_key(&account, client);
        let attempt = LoginAttempt {
            account,
            client,
            pair,
        };
        if self.is_known(&account, client) {
            self.per_known.check_key(&pair).ok()?;
            return Some(attempt);
        }
        self.per_client.check_key(&client).ok()?;
        self.per_account_client.check_key(&pair).ok()?;
        self.per_account.check_key(&account).ok()?;
        Some(attempt)
    }

    /// The attempt logged in: its (account, client) counts start over and the client is known
    /// to the account from now on.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        self.account_client_store.forget(&attempt.pair);
        self.known_store.forget(&attempt.pair);
        let mut known = self.known();
        if known.len() >= MAX_KNOWN_ACCOUNTS && !known.contains_key(&attempt.account) {
            return; // Remembered again once the 10 s prune has made room.
        }
        let clients = known.entry(attempt.account).or_default();
        clients.retain(|(c, _)| *c != attempt.client);
        if clients.len() >= KNOWN_PER_ACCOUNT {
            clients.remove(0); // The oldest.
        }
        clients.push((attempt.client, Instant::now()));
    }

    fn is_known(&self, account: &[u8; 32], client: IpAddr) -> bool {
        self.known().get(account).is_some_and(|clients| {
            clients
                .iter()
                .any(|(c, at)| *c == client && at.elapsed() < KNOWN_FOR)
        })
    }

    pub fn prune(&self) {
        self.per_client.retain_recent();
        self.per_account_client.retain_recent();
        self.per_account.retain_recent();
        self.per_known.retain_recent();
        self.known().retain(|_, clients| {
            clients.retain(|(_, at)| at.elapsed() < KNOWN_FOR);
            !clients.is_empty()
        });
    }

    /// Keys held in every map together (tests: the bound holds under a flood).
    pub fn tracked_keys(&self) -> usize {
        self.per_client.len()
            + self.per_account_client.len()
            + self.per_account.len()
            + self.per_known.len()
            + self.known().values().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sixth_attempt_for_one_email_from_one_client_is_refused() {
        let l = LoginLimits::default();
        for _ in 0..ACCOUNT_CLIENT_BURST {
            assert!(l.attempt("A@example.com", ip("127.0.0.1")).is_some());
        }
        assert!(l.attempt(" a@example.com", ip("127.0.0.1")).is_none());
        assert!(l.attempt("b@example.com", ip("127.0.0.1")).is_some());
        // Another client still may try that account.
        assert!(l.attempt("a@example.com", ip("127.0.0.2")).is_some());
    }

    #[test]
    fn a_success_starts_the_count_over() {
        let l = LoginLimits::default();
        for _ in 0..3 * ACCOUNT_CLIENT_BURST {
            let a = l.attempt("owner@example.com", ip("192.0.2.1")).unwrap();
            l.succeeded(a);
        }
    }

    #[test]
    fn a_flood_from_elsewhere_does_not_lock_out_a_known_client() {
        let l = LoginLimits::default();
        let owner = ip("192.0.2.1");
        l.succeeded(l.attempt("owner@example.com", owner).unwrap());
        // Many clients spend the account's bucket for clients it has not seen...
        let mut refused = 0;
        for i in 0..(ACCOUNT_BURST + 50) {
            let attacker = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            refused += usize::from(l.attempt("OWNER@example.com", attacker).is_none());
        }
        assert!(refused >= 49, "{refused}");
        assert!(
            l.attempt("owner@example.com", ip("192.0.2.2")).is_none(),
            "a new client waits"
        );
        // ...and the owner's own client is not refused.
        assert!(l.attempt("owner@example.com", owner).is_some());
    }

    #[test]
    fn a_known_client_is_not_refused_when_floods_fill_every_other_map() {
        let l = LoginLimits::default();
        let owner = ip("2001:db8:1::1");
        l.succeeded(l.attempt("owner@example.com", owner).unwrap());
        // Unique clients and emails past every other map's bound: their overflow buckets are
        // spent.
        for i in 0..(MAX_LOGIN_KEYS as u32 + 20_000) {
            let _ = l.attempt(&format!("{i}@example.com"), IpAddr::from(i.to_be_bytes()));
            let _ = l.attempt("owner@example.com", IpAddr::from(i.to_be_bytes()));
        }
        for _ in 0..ACCOUNT_CLIENT_BURST {
            let a = l
                .attempt("owner@example.com", owner)
                .expect("the owner gets in");
            l.succeeded(a);
        }
    }

    #[test]
    fn known_clients_are_bounded_per_account() {
        let l = LoginLimits::default();
        for i in 0..100u32 {
            let a = l
                .attempt("owner@example.com", IpAddr::from(i.to_be_bytes()))
                .unwrap();
            l.succeeded(a);
        }
        assert_eq!(
            l.known().values().map(Vec::len).sum::<usize>(),
            KNOWN_PER_ACCOUNT
        );
        // The newest are the ones kept.
        assert!(l.is_known(
            &account_key("owner@example.com"),
            IpAddr::from(99u32.to_be_bytes())
        ));
        assert!(!l.is_known(
            &account_key("owner@example.com"),
            IpAddr::from(0u32.to_be_bytes())
        ));
    }

    #[test]
    fn login_maps_stay_bounded_under_unique_emails_and_clients() {
        let l = LoginLimits::default();
        for i in 0..(MAX_LOGIN_KEYS as u32 + 30_000) {
            let _ = l.attempt(&format!("{i}@example.com"), IpAddr::from(i.to_be_bytes()));
        }
        // Three limiter maps (each rounded up to whole shards) and the known set (empty).
        assert!(
            l.tracked_keys() <= 3 * (MAX_LOGIN_KEYS + 16),
            "{}",
            l.tracked_keys()
        );
    }
}
