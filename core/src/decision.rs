//! The decision function: (workspace policy, validated call, now) -> verified / unverified /
//! rejected, exactly the decision table of PROTOCOL.md.
//!
//! Check order for the seed form: malformed signature, missing `signedAt`, `signedAt` in
//! milliseconds, MAC, then the freshness window. Shape errors come first because they need no
//! key; the MAC comes before the window so that a stale *valid* signature is reported as expired
//! (the actionable message for a cached signature) while a wrong one is reported as a mismatch.

use alloc::string::String;
use alloc::vec::Vec;

use crate::claims::{self, Claims};
use crate::payload::{Identify, Traits};
use crate::rejection::Rejection;
use crate::secret::SecretKey;
use crate::seed::{self, SeedCheck};
use crate::timestamp::{self, MILLISECONDS_THRESHOLD};
use crate::value::Value;

/// What strict mode does with unsigned calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrictMode {
    /// Unsigned calls are accepted and stored as unverified.
    #[default]
    Off,
    /// Unsigned calls are still accepted as unverified, but reported as would-be-rejected.
    ReportOnly,
    /// Unsigned calls are rejected with `signature_required`.
    Enforce,
}

impl StrictMode {
    /// Stable name used in settings, CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StrictMode::Off => "off",
            StrictMode::ReportOnly => "report_only",
            StrictMode::Enforce => "on",
        }
    }

    /// Parses the stable name (also `true`/`false` for convenience).
    pub fn parse(s: &str) -> Option<StrictMode> {
        match s {
            "off" | "false" => Some(StrictMode::Off),
            "report_only" | "report-only" => Some(StrictMode::ReportOnly),
            "on" | "true" | "enforce" => Some(StrictMode::Enforce),
            _ => None,
        }
    }
}

/// A workspace's verification settings and active secrets (one, or two during a rotation).
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub secrets: &'a [SecretKey],
    pub strict: StrictMode,
    pub require_signed_claims: bool,
}

/// How a verified call was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `hex(HMAC-SHA256(secret, user_id))` with `signedAt` alongside.
    SeedHmac,
    /// An HS256 token with `sub`, `iat` and optional trusted traits.
    SignedClaims,
}

impl Method {
    /// The `method` value of the success body.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SeedHmac => "seed_hmac",
            Method::SignedClaims => "signed_claims",
        }
    }
}

/// Trait values a verified call establishes as trusted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedTraits {
    pub name: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub mrr: Option<f64>,
    pub signup_date: Option<String>,
    /// Custom traits a signed-claims token signs (empty for the seed form, whose custom traits
    /// are stored as sent, like every browser-sent custom trait).
    pub custom: Vec<(String, Value)>,
}

/// A verified call.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub method: Method,
    /// Which active secret verified it (0 = newest); lets operators see when an old key is unused.
    pub key_index: usize,
    /// When the customer's backend signed (`signedAt` or the token's `iat`).
    pub signed_at: i64,
    /// For the seed form: the call's traits, as the page promises. For signed claims: only the
    /// token's values; browser-sent traits the token does not cover stay unverified claims.
    pub trusted: TrustedTraits,
}

/// The outcome of one identify call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// 200: store as verified.
    Verified(Verified),
    /// 202: store as unverified. `would_reject` is set in strict report-only mode.
    Unverified { would_reject: Option<Rejection> },
    /// 401: store nothing.
    Rejected(Rejection),
}

/// Decides one identify call. `now` is Unix seconds, read by the adapter.
pub fn decide(policy: &Policy<'_>, call: &Identify, now: i64) -> Decision {
    match decide_signed(policy, call, now) {
        Ok(Some(verified)) => Decision::Verified(verified),
        Ok(None) if policy.require_signed_claims => {
            Decision::Rejected(Rejection::SignedClaimsRequired)
        }
        Ok(None) => match policy.strict {
            StrictMode::Off => Decision::Unverified { would_reject: None },
            StrictMode::ReportOnly => Decision::Unverified {
                would_reject: Some(Rejection::SignatureRequired),
            },
            StrictMode::Enforce => Decision::Rejected(Rejection::SignatureRequired),
        },
        Err(rejection) => Decision::Rejected(rejection),
    }
}

/// `Ok(None)` means "no signature".
fn decide_signed(
    policy: &Policy<'_>,
    call: &Identify,
    now: i64,
) -> Result<Option<Verified>, Rejection> {
    let Some(signature) = call.signature.as_deref() else {
        return Ok(None);
    };
    if seed::is_seed_form(signature) {
        if policy.require_signed_claims {
            return Err(Rejection::SignedClaimsRequired);
        }
        let signed_at = call.signed_at.ok_or(Rejection::SignedAtMissing)?;
        if signed_at >= MILLISECONDS_THRESHOLD {
            return Err(Rejection::SignedAtNotSeconds);
        }
        let key_index = match seed::verify(policy.secrets, &call.user_id, signature) {
            SeedCheck::Valid { key_index } => key_index,
            SeedCheck::Mismatch => return Err(Rejection::SignatureMismatch),
            SeedCheck::Malformed => return Err(Rejection::SignatureMalformed),
        };
        timestamp::check(signed_at, now)?;
        let t = &call.traits;
        return Ok(Some(Verified {
            method: Method::SeedHmac,
            key_index,
            signed_at,
            trusted: TrustedTraits {
                name: t.name.clone(),
                email: t.email.clone(),
                plan: t.plan.clone(),
                mrr: t.mrr,
                signup_date: t.signup_date.clone(),
                custom: Vec::new(),
            },
        }));
    }
    if claims::is_jws_form(signature) {
        let (claims, key_index) = claims::verify(policy.secrets, signature, now)?;
        check_consistent(&claims, &call.user_id, &call.traits)?;
        return Ok(Some(Verified {
            method: Method::SignedClaims,
            key_index,
            signed_at: claims.iat,
            trusted: TrustedTraits {
                name: claims.name,
                email: claims.email,
                plan: claims.plan,
                mrr: claims.mrr,
                signup_date: claims.signup_date,
                custom: claims.custom,
            },
        }));
    }
    Err(Rejection::SignatureMalformed)
}

/// Browser-sent values that contradict the token mean tampering. A trait the token does not cover
/// (or the browser does not send, or sends as `null`) contradicts nothing.
fn check_consistent(claims: &Claims, user_id: &str, traits: &Traits) -> Result<(), Rejection> {
    fn differs<T: PartialEq>(signed: &Option<T>, sent: &Option<T>) -> bool {
        matches!((signed, sent), (Some(a), Some(b)) if a != b)
    }
    let custom_differs = claims.custom.iter().any(|(key, signed)| {
        traits
            .custom
            .iter()
            .find(|(k, _)| k == key)
            .is_some_and(|(_, sent)| *sent != Value::Null && !same_value(signed, sent))
    });
    if claims.sub != user_id
        || differs(&claims.plan, &traits.plan)
        || differs(&claims.mrr, &traits.mrr)
        || differs(&claims.email, &traits.email)
        || differs(&claims.name, &traits.name)
        || differs(&claims.signup_date, &traits.signup_date)
        || custom_differs
    {
        return Err(Rejection::ClaimsMismatch);
    }
    Ok(())
}

/// JSON equality with numbers compared by value: `5` from one JSON encoder is `5.0` from another
/// (Python's `json.dumps(5.0)`, for instance), and both mean the same trait value.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => *i as f64 == *f,
        _ => a == b,
    }
}
