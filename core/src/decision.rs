//! The decision function: (workspace policy, validated call, now) -> verified / unverified /
//! rejected, exactly the decision table of PROTOCOL.md.
//!
//! Check order for the seed form: malformed signature, missing `signedAt`, `signedAt` in
//! milliseconds, MAC, then the freshness window. Shape errors come first because they need no
//! key; the MAC comes before the window so that a stale *valid* signature is reported as expired
//! (the actionable message for a cached signature) while a wrong one is reported as a mismatch.

use alloc::vec::Vec;
use core::fmt;

use crate::claims::{self, Claims};
use crate::issuer;
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
    /// The workspace's token issuers: who checks public-key tokens ([`NO_ISSUERS`] if none).
    pub issuers: &'a dyn TokenIssuers,
}

/// Verifies public-key tokens ([`issuer::is_issuer_token`]) against a workspace's token issuers.
/// The verifier implements it over its issuers' keys (static, or fetched from a JWKS URL): it
/// chooses the issuer by `iss` and the key by `kid`, checks the signature with the algorithm the
/// issuer allows and the key supports, then applies [`issuer::check_claims`].
pub trait TokenIssuers: fmt::Debug + Sync {
    /// The token's claims and the index of the issuer that vouched for them.
    fn verify(&self, token: &str, now: i64) -> Result<(Claims, usize), Rejection>;
}

/// A workspace without token issuers: every public-key token is from an unknown issuer.
#[derive(Debug, Clone, Copy)]
pub struct NoIssuers;

impl TokenIssuers for NoIssuers {
    fn verify(&self, _token: &str, _now: i64) -> Result<(Claims, usize), Rejection> {
        Err(Rejection::UnknownIssuer)
    }
}

/// [`NoIssuers`], for [`Policy::issuers`].
pub const NO_ISSUERS: &NoIssuers = &NoIssuers;

/// How a verified call was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `hex(HMAC-SHA256(secret, user_id))` with `signedAt` alongside.
    SeedHmac,
    /// An HS256 token with `sub`, `iat` and optional trusted traits.
    SignedClaims,
    /// A public-key token of one of the workspace's token issuers (its own backend's key pair,
    /// or its identity provider).
    IssuerToken,
}

impl Method {
    /// The `method` value of the success body.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SeedHmac => "seed_hmac",
            Method::SignedClaims => "signed_claims",
            Method::IssuerToken => "issuer_token",
        }
    }
}

/// Trait values a verified call establishes as trusted: the fields of the call's [`Traits`].
/// `custom` holds the custom traits a signed-claims token signs (empty for the seed form, whose
/// custom traits are stored as sent, like every browser-sent custom trait).
pub type TrustedTraits = Traits;

/// A verified call.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub method: Method,
    /// Which active secret verified it (0 = newest), or for [`Method::IssuerToken`] which token
    /// issuer; lets operators see when an old key is unused.
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
        return Ok(Some(Verified {
            method: Method::SeedHmac,
            key_index,
            signed_at,
            trusted: TrustedTraits {
                custom: Vec::new(),
                ..call.traits.clone()
            },
        }));
    }
    if issuer::is_issuer_token(signature) {
        let (claims, issuer_index) = policy.issuers.verify(signature, now)?;
        check_consistent(&claims, &call.user_id, &call.traits)?;
        return Ok(Some(Verified {
            method: Method::IssuerToken,
            key_index: issuer_index,
            signed_at: claims.iat,
            trusted: claims.into_traits(),
        }));
    }
    if claims::is_jws_form(signature) {
        let (claims, key_index) = claims::verify(policy.secrets, signature, now)?;
        check_consistent(&claims, &call.user_id, &call.traits)?;
        return Ok(Some(Verified {
            method: Method::SignedClaims,
            key_index,
            signed_at: claims.iat,
            trusted: claims.into_traits(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const NOW: i64 = 1_732_406_400;

    /// The call's traits, every one of them set.
    fn full_traits() -> Traits {
        Traits {
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            plan: Some("pro".into()),
            mrr: Some(49.0),
            signup_date: Some("2024-03-01".into()),
            custom: vec![
                ("team".into(), Value::Str("core".into())),
                ("seats".into(), Value::Float(5.0)),
            ],
        }
    }

    /// A token for user 42 covering the same traits, with `seats` signed as `5` where the call
    /// sends `5.0` (the same value from another JSON encoder).
    fn full_claims() -> Claims {
        let mut claims = Claims::from_traits("42", NOW, None, full_traits());
        claims.custom[1].1 = Value::Int(5);
        claims
    }

    /// Exactly one contradicting trait is enough (a core that refused only when every trait
    /// differs would pass a test that changes them all).
    #[test]
    fn one_contradicting_trait_is_a_mismatch() {
        let c = full_claims();
        assert_eq!(check_consistent(&c, "42", &full_traits()), Ok(()));
        assert_eq!(check_consistent(&c, "42", &Traits::default()), Ok(()));
        assert_eq!(
            check_consistent(&c, "43", &full_traits()),
            Err(Rejection::ClaimsMismatch)
        );
        let edits: [fn(&mut Traits); 7] = [
            |t| t.name = Some("Eve".into()),
            |t| t.email = Some("eve@example.com".into()),
            |t| t.plan = Some("enterprise".into()),
            |t| t.mrr = Some(49.5),
            |t| t.signup_date = Some("2020-01-01".into()),
            |t| t.custom[0].1 = Value::Str("other".into()),
            |t| t.custom[1].1 = Value::Int(6),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut t = full_traits();
            edit(&mut t);
            assert_eq!(
                check_consistent(&c, "42", &t),
                Err(Rejection::ClaimsMismatch),
                "edit {i}"
            );
        }
    }

    #[test]
    fn what_the_token_or_the_browser_leaves_out_contradicts_nothing() {
        // Browser sends a custom trait the token does not cover, or null for one it does.
        let mut t = full_traits();
        t.custom.push(("extra".into(), Value::Bool(true)));
        t.custom[0].1 = Value::Null;
        assert_eq!(check_consistent(&full_claims(), "42", &t), Ok(()));
        // Token covers nothing beyond sub.
        let bare = Claims {
            sub: "42".into(),
            iat: NOW,
            ..Claims::default()
        };
        assert_eq!(check_consistent(&bare, "42", &full_traits()), Ok(()));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same_value(&Value::Int(5), &Value::Float(5.0)));
        assert!(same_value(&Value::Float(5.0), &Value::Int(5)));
        assert!(!same_value(&Value::Int(5), &Value::Float(5.5)));
        assert!(!same_value(&Value::Float(5.5), &Value::Int(5)));
        assert!(same_value(&Value::Int(5), &Value::Int(5)));
        assert!(!same_value(&Value::Int(5), &Value::Int(6)));
        assert!(!same_value(&Value::Str("5".into()), &Value::Int(5)));
        assert!(!same_value(&Value::Bool(true), &Value::Int(1)));
    }

    #[test]
    fn verified_carries_the_signed_traits() {
        let secrets = [SecretKey::new("k")];
        let token = claims::sign(&secrets[0], &full_claims());
        let call = Identify {
            app_id: "a".into(),
            user_id: "42".into(),
            traits: full_traits(),
            signature: Some(token),
            signed_at: None,
        };
        let policy = Policy {
            secrets: &secrets,
            strict: StrictMode::Enforce,
            require_signed_claims: true,
            issuers: NO_ISSUERS,
        };
        let Decision::Verified(v) = decide(&policy, &call, NOW) else {
            panic!("not verified");
        };
        assert_eq!(v.method, Method::SignedClaims);
        assert_eq!(v.signed_at, NOW);
        assert_eq!(v.trusted, full_claims().into_traits());
        // The seed form trusts the call's standard traits, signup_date included; no custom.
        let seed_call = Identify {
            signature: Some(seed::sign(&secrets[0], "42")),
            signed_at: Some(NOW),
            ..call
        };
        let policy = Policy {
            require_signed_claims: false,
            ..policy
        };
        let Decision::Verified(v) = decide(&policy, &seed_call, NOW) else {
            panic!("not verified");
        };
        assert_eq!(v.method, Method::SeedHmac);
        assert_eq!(v.trusted.signup_date.as_deref(), Some("2024-03-01"));
        assert_eq!(v.trusted.plan.as_deref(), Some("pro"));
        assert!(v.trusted.custom.is_empty());
    }

    #[test]
    fn strict_mode_names_and_method_names() {
        for (mode, name) in [
            (StrictMode::Off, "off"),
            (StrictMode::ReportOnly, "report_only"),
            (StrictMode::Enforce, "on"),
        ] {
            assert_eq!(mode.as_str(), name);
            assert_eq!(StrictMode::parse(name), Some(mode));
        }
        assert_eq!(StrictMode::parse("false"), Some(StrictMode::Off));
        assert_eq!(
            StrictMode::parse("report-only"),
            Some(StrictMode::ReportOnly)
        );
        assert_eq!(StrictMode::parse("true"), Some(StrictMode::Enforce));
        assert_eq!(StrictMode::parse("enforce"), Some(StrictMode::Enforce));
        assert_eq!(StrictMode::parse("On"), None);
        assert_eq!(StrictMode::default(), StrictMode::Off);
        assert_eq!(Method::SeedHmac.as_str(), "seed_hmac");
        assert_eq!(Method::SignedClaims.as_str(), "signed_claims");
        assert_eq!(Method::IssuerToken.as_str(), "issuer_token");
    }

    /// A token issuer that vouches for `42` with plan `pro` (issuer 3), or refuses.
    #[derive(Debug)]
    struct FakeIssuer(Option<Rejection>);

    impl TokenIssuers for FakeIssuer {
        fn verify(&self, token: &str, now: i64) -> Result<(Claims, usize), Rejection> {
            assert!(issuer::is_issuer_token(token));
            match self.0 {
                Some(r) => Err(r),
                None => Ok((
                    Claims {
                        sub: "42".into(),
                        iat: now - 1000,
                        plan: Some("pro".into()),
                        ..Claims::default()
                    },
                    3,
                )),
            }
        }
    }

    #[test]
    fn public_key_tokens_go_to_the_issuers_and_count_as_signed_claims() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = alloc::format!("{}.{}.AAAA", b64(r#"{"alg":"ES256"}"#), b64("{}"));
        let call = |user: &str, plan: &str| Identify {
            app_id: "a".into(),
            user_id: user.into(),
            traits: Traits {
                plan: Some(plan.into()),
                ..Traits::default()
            },
            signature: Some(token.clone()),
            signed_at: None,
        };
        let secrets = [SecretKey::new("k")];
        let ok = FakeIssuer(None);
        let policy = Policy {
            secrets: &secrets,
            strict: StrictMode::Enforce,
            require_signed_claims: true,
            issuers: &ok,
        };
        let Decision::Verified(v) = decide(&policy, &call("42", "pro"), NOW) else {
            panic!("not verified");
        };
        assert_eq!(v.method, Method::IssuerToken);
        assert_eq!(v.key_index, 3);
        assert_eq!(v.signed_at, NOW - 1000);
        assert_eq!(v.trusted.plan.as_deref(), Some("pro"));
        for (user, plan) in [("43", "pro"), ("42", "enterprise")] {
            assert_eq!(
                decide(&policy, &call(user, plan), NOW),
                Decision::Rejected(Rejection::ClaimsMismatch)
            );
        }
        let refusing = FakeIssuer(Some(Rejection::AudienceMismatch));
        let policy = Policy {
            issuers: &refusing,
            ..policy
        };
        assert_eq!(
            decide(&policy, &call("42", "pro"), NOW),
            Decision::Rejected(Rejection::AudienceMismatch)
        );
        let policy = Policy {
            issuers: NO_ISSUERS,
            ..policy
        };
        assert_eq!(
            decide(&policy, &call("42", "pro"), NOW),
            Decision::Rejected(Rejection::UnknownIssuer)
        );
        // HS256 stays with the claims key, whatever issuers there are.
        let hs = claims::sign(
            &secrets[0],
            &Claims::from_traits("42", NOW, None, Traits::default()),
        );
        let policy = Policy {
            issuers: &refusing,
            ..policy
        };
        let hs_call = Identify {
            signature: Some(hs),
            ..call("42", "pro")
        };
        assert!(
            matches!(decide(&policy, &hs_call, NOW), Decision::Verified(v) if v.method == Method::SignedClaims)
        );
    }
}
