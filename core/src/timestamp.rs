//! The freshness window shared by the seed form (`signedAt`) and signed claims (`iat`).

use crate::rejection::Rejection;

/// A signature older than this many seconds is expired (the page's "expires after 5 minutes").
pub const MAX_AGE_SECS: i64 = 300;

/// Tolerated clock skew into the future, in seconds.
pub const MAX_FUTURE_SKEW_SECS: i64 = 60;

/// Timestamps at or above this are read as milliseconds: 10^11 seconds is the year 5138, while
/// `Date.now()` has been above 10^12 since 2001.
pub const MILLISECONDS_THRESHOLD: i64 = 100_000_000_000;

/// Checks a signing timestamp (Unix seconds) against `now` (Unix seconds, read by the adapter).
pub fn check(signed_at: i64, now: i64) -> Result<(), Rejection> {
    if signed_at >= MILLISECONDS_THRESHOLD {
        return Err(Rejection::SignedAtNotSeconds);
    }
    if signed_at > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
        return Err(Rejection::SignedAtInFuture);
    }
    if now.saturating_sub(signed_at) > MAX_AGE_SECS {
        return Err(Rejection::SignatureExpired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_406_400;

    #[test]
    fn window_edges() {
        assert_eq!(check(NOW, NOW), Ok(()));
        assert_eq!(check(NOW - 300, NOW), Ok(()));
        assert_eq!(check(NOW - 301, NOW), Err(Rejection::SignatureExpired));
        assert_eq!(check(NOW + 60, NOW), Ok(()));
        assert_eq!(check(NOW + 61, NOW), Err(Rejection::SignedAtInFuture));
        assert_eq!(check(NOW * 1000, NOW), Err(Rejection::SignedAtNotSeconds));
        assert_eq!(check(i64::MIN, NOW), Err(Rejection::SignatureExpired));
        assert_eq!(check(i64::MAX, NOW), Err(Rejection::SignedAtNotSeconds));
    }
}
