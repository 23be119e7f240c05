//! Rate limits per client IP and per workspace (GCRA through `governor`), answered with 429 and
//! `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct Limits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_app: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_ip", &self.per_ip.is_some())
            .field("per_app", &self.per_app.is_some())
            .finish()
    }
}

/// `per_second` sustained with a burst of twice that; `None` when 0 (unlimited).
fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limits {
    pub fn new(per_ip: u32, per_app: u32) -> Limits {
        Limits {
            per_ip: quota(per_ip).map(RateLimiter::keyed),
            per_app: quota(per_app).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `ip` is over its limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        match &self.per_ip {
            Some(l) => l
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// `Err(wait)` when the workspace is over its limit.
    pub fn check_app(&self, app_id: &str) -> Result<(), Duration> {
        match &self.per_app {
            Some(l) => l
                .check_key(&app_id.to_string())
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(limits.check_app("app_x").is_ok(), "0 means unlimited");
    }
}
