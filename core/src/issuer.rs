//! Issuer tokens: compact JWS signed with a *public-key* algorithm by a token issuer the
//! workspace trusts: the customer's own backend holding a private key whose public half is
//! registered, or the customer's identity provider (Auth0, Clerk, Firebase Auth, Cognito,
//! Supabase, Keycloak...) whose keys are published as a JWKS.
//!
//! This module holds the pure part: splitting a token, reading its header, and the claim rules
//! once the verifier has checked the signature with the issuer's key (the verifier owns keys,
//! crypto and fetching). The rules differ from HS256 signed claims in time only: an issuer's token
//! lives until its `exp` (required), as identity providers issue them for an hour or more, while
//! `iat` and `nbf` may be at most [`MAX_FUTURE_SKEW_SECS`] ahead of the verifier's clock.
//!
//! Which claims become traits is the issuer's configuration ([`IssuerRules::traits`]): either the
//! signed-claims format (every claim that is neither registered nor the user claim is a trait,
//! as in an HS256 token), or an explicit map from claim to trait, the only sane reading of an
//! identity provider's token (it carries `email_verified`, `picture`, `azp`, `nonce`... which are
//! no traits).

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value as Json;

use crate::claims::{self, Claims};
use crate::rejection::Rejection;
use crate::timestamp::{MAX_FUTURE_SKEW_SECS, MILLISECONDS_THRESHOLD};
use crate::value::Value;

/// The JWS algorithms of issuer tokens. A token whose header names one of these is checked
/// against the workspace's token issuers and never against its claims key, so an HS256 token
/// keyed with a public key's bytes stays on the HS256 path, where it matches nothing.
pub const PUBLIC_KEY_ALGS: [&str; 9] = [
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// The longest an issuer token may live: `exp` at most this far ahead, `iat` at most this old.
/// Identity providers issue ID tokens for minutes to hours (at most a day); a backend's own
/// tokens for minutes.
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// A compact JWS split into its parts, header and payload decoded. Nothing here is verified:
/// the verifier reads `alg`, `kid` and `iss` to choose the key, checks the signature over
/// [`Jws::signing_input`], and only then reads claims through [`check_claims`].
#[derive(Debug, Clone, PartialEq)]
pub struct Jws<'t> {
    /// `base64url(header) . base64url(payload)`, the bytes the signature covers.
    pub signing_input: &'t str,
    /// The decoded signature.
    pub signature: Vec<u8>,
    header: serde_json::Map<String, Json>,
    payload: serde_json::Map<String, Json>,
}

impl<'t> Jws<'t> {
    /// Splits and decodes a compact JWS. Refuses (`signature_malformed`) anything but three
    /// unpadded base64url segments whose first two are JSON objects, and a `crit` header (no
    /// extension is understood, so none may be required).
    pub fn parse(token: &'t str) -> Result<Self, Rejection> {
        let (signing_input, header_b64, payload_b64, sig_b64) = claims::segments(token)?;
        let header = object(header_b64)?;
        // No extension is understood, so none may be required; a `kid` that is not a string
        // would otherwise be read as no kid at all.
        if header.contains_key("crit") || header.get("kid").is_some_and(|k| !k.is_string()) {
            return Err(Rejection::SignatureMalformed);
        }
        let payload = object(payload_b64)?;
        let signature = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| Rejection::SignatureMalformed)?;
        Ok(Jws {
            signing_input,
            signature,
            header,
            payload,
        })
    }

    /// The header's `alg`.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Json::as_str)
    }

    /// The header's `kid`. Every other header (`jwk`, `jku`, `x5u`, `x5c`...) is ignored: a
    /// token never brings its own key.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Json::as_str)
    }

    /// The payload's `iss` (unverified until the signature is checked).
    pub fn iss(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Json::as_str)
    }
}

/// Whether `token` is a compact JWS whose header names a public-key algorithm
/// ([`PUBLIC_KEY_ALGS`]). Reads the header only.
pub fn is_issuer_token(token: &str) -> bool {
    let Some((header_b64, _)) = token.split_once('.') else {
        return false;
    };
    claims::is_jws_form(token)
        && object(header_b64).is_ok_and(|h| {
            h.get("alg")
                .and_then(Json::as_str)
                .is_some_and(|alg| PUBLIC_KEY_ALGS.contains(&alg))
        })
}

fn object(segment: &str) -> Result<serde_json::Map<String, Json>, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::SignatureMalformed)?;
    match serde_json::from_slice::<Json>(&bytes) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err(Rejection::SignatureMalformed),
    }
}

/// What one issuer's tokens must say, and how their claims become a user id and traits.
#[derive(Debug, Clone, Copy)]
pub struct IssuerRules<'a> {
    /// The expected `iss`. `None` accepts any or none: only for an issuer of static public keys,
    /// where the key alone names the signer.
    pub issuer: Option<&'a str>,
    /// The accepted audiences: the token's `aud` (a string or an array) must hold one of them.
    /// Empty means `aud` is not checked (static public keys only; an identity provider's issuer
    /// always names its audience, or any app of the same tenant could sign users in).
    pub audiences: &'a [String],
    /// The claim holding the user id (`sub` unless configured; a dotted path reaches into
    /// objects).
    pub user_claim: &'a str,
    /// `None`: the signed-claims format (every claim that is neither registered nor the user
    /// claim is a trait). `Some(map)`: only these `(claim, trait)` pairs, the claim a top-level
    /// name (namespaced URLs included) or a dotted path.
    pub traits: Option<&'a [(String, String)]>,
}

/// The claims of an issuer token whose signature the verifier has checked, under `rules` and
/// the clock reading `now` (Unix seconds).
///
/// Check order: `iss`, `aud`, `exp` (required), `nbf`, `iat`, then the user claim and traits, so
/// a token meant for somebody else is reported as such before anything about its content.
pub fn check_claims(rules: &IssuerRules<'_>, jws: &Jws<'_>, now: i64) -> Result<Claims, Rejection> {
    let payload = &jws.payload;
    if let Some(expected) = rules.issuer
        && payload.get("iss").and_then(Json::as_str) != Some(expected)
    {
        return Err(Rejection::UnknownIssuer);
    }
    if !rules.audiences.is_empty() && !audience_matches(payload.get("aud"), rules.audiences) {
        return Err(Rejection::AudienceMismatch);
    }
    let exp = time(payload, "exp")?.ok_or(Rejection::SignatureMalformed)?;
    if now >= exp {
        return Err(Rejection::TokenExpired);
    }
    // A token lives at most a day: one that claims longer is refused, so a leaked or replayed
    // token cannot vouch for a user (or for a plan they had) for ever.
    if exp > now.saturating_add(MAX_LIFETIME_SECS) {
        return Err(Rejection::SignatureMalformed);
    }
    if time(payload, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(MAX_FUTURE_SKEW_SECS)) {
        return Err(Rejection::TokenNotYetValid);
    }
    let iat = time(payload, "iat")?;
    if let Some(iat) = iat {
        if iat >= MILLISECONDS_THRESHOLD {
            return Err(Rejection::SignedAtNotSeconds);
        }
        if iat > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
            return Err(Rejection::SignedAtInFuture);
        }
        if now.saturating_sub(iat) > MAX_LIFETIME_SECS {
            return Err(Rejection::TokenExpired);
        }
    }
    let sub = match claim(payload, rules.user_claim) {
        Some(Json::String(s)) => s.clone(),
        // Some providers keep numeric user ids; the id is the decimal string `identify()` gets.
        Some(Json::Number(n)) if !n.is_f64() => n.to_string(),
        _ => return Err(Rejection::SignatureMalformed),
    };
    if sub.is_empty() || sub.chars().any(char::is_control) {
        return Err(Rejection::SignatureMalformed);
    }
    // The traits go through the signed-claims rules by way of an object in that format.
    let mut entries: Vec<(String, Value)> = Vec::new();
    match rules.traits {
        None => {
            // The user claim is no trait, nor the object a dotted user claim is found in.
            let holds_user = |key: &str| {
                rules.user_claim == key
                    || rules
                        .user_claim
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
            };
            for (key, value) in payload {
                if holds_user(key) || claims::REGISTERED_CLAIMS.contains(&key.as_str()) {
                    continue;
                }
                entries.push((key.clone(), scalar(value)?));
            }
        }
        Some(map) => {
            for (from, to) in map {
                if let Some(value) = claim(payload, from)
                    && !entries.iter().any(|(k, _)| k == to)
                    && !(to == "email" && unverified_email(payload))
                {
                    entries.push((to.clone(), scalar(value)?));
                }
            }
        }
    }
    let traits = claims::traits_of(&entries)?;
    Ok(Claims::from_traits(
        sub,
        iat.unwrap_or(now),
        Some(exp),
        traits,
    ))
}

/// Whether an identity provider says the token's email is not verified (`email_verified` other
/// than `true`, as OpenID Connect and its providers send it, a string "true" included). Such an
/// email was typed by whoever signed up, so it is not vouched for: left out of the trusted traits.
fn unverified_email(payload: &serde_json::Map<String, Json>) -> bool {
    match payload.get("email_verified") {
        None => false,
        Some(Json::Bool(verified)) => !verified,
        Some(Json::String(s)) => s != "true",
        Some(_) => true,
    }
}

/// A claim by name: the top-level key first (namespaced claims such as
/// `https://example.com/plan` hold dots), else a dotted path through objects
/// (`app_metadata.plan`).
fn claim<'p>(payload: &'p serde_json::Map<String, Json>, name: &str) -> Option<&'p Json> {
    if let Some(value) = payload.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = payload.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn audience_matches(aud: Option<&Json>, accepted: &[String]) -> bool {
    let accepts = |a: &Json| a.as_str().is_some_and(|a| accepted.iter().any(|x| x == a));
    match aud {
        Some(Json::Array(list)) => list.iter().any(accepts),
        Some(single) => accepts(single),
        None => false,
    }
}

/// NumericDate: integer seconds; a fraction (allowed by RFC 7519) is truncated, and a value beyond
/// `i64` saturates (the time rules then refuse it).
fn time(payload: &serde_json::Map<String, Json>, key: &str) -> Result<Option<i64>, Rejection> {
    match payload.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
        Some(_) => Err(Rejection::SignatureMalformed),
    }
}

/// A claim value as a trait value: scalars only (the trait rules refuse containers, and an array
/// or object mapped to a trait is a configuration the token cannot satisfy).
fn scalar(value: &Json) -> Result<Value, Rejection> {
    Ok(match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(f)) => Value::Float(f),
            _ => return Err(Rejection::SignatureMalformed),
        },
        Json::String(s) => Value::Str(s.to_owned()),
        Json::Array(_) | Json::Object(_) => return Err(Rejection::SignatureMalformed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    const NOW: i64 = 1_732_406_400;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode([1u8, 2, 3])
        )
    }

    fn check(rules: &IssuerRules<'_>, payload: &str) -> Result<Claims, Rejection> {
        let t = token(r#"{"alg":"ES256","kid":"k1"}"#, payload);
        check_claims(rules, &Jws::parse(&t)?, NOW)
    }

    fn idp<'a>(aud: &'a [String], map: &'a [(String, String)]) -> IssuerRules<'a> {
        IssuerRules {
            issuer: Some("https://idp.example/"),
            audiences: aud,
            user_claim: "sub",
            traits: Some(map),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn parse_reads_alg_kid_iss_and_the_signature() {
        let t = token(
            r#"{"alg":"RS256","kid":"abc","jku":"https://evil.example/jwks"}"#,
            r#"{"iss":"https://idp.example/"}"#,
        );
        let jws = Jws::parse(&t).unwrap();
        assert_eq!(jws.alg(), Some("RS256"));
        assert_eq!(jws.kid(), Some("abc"));
        assert_eq!(jws.iss(), Some("https://idp.example/"));
        assert_eq!(jws.signature, vec![1, 2, 3]);
        assert_eq!(jws.signing_input, t.rsplit_once('.').unwrap().0);
        let bare = token(r#"{"alg":"RS256"}"#, r#"{"iss":7}"#);
        let jws = Jws::parse(&bare).unwrap();
        assert_eq!((jws.kid(), jws.iss()), (None, None));
    }

    #[test]
    fn parse_refuses_what_is_not_a_jws_of_objects() {
        for bad in [
            token(r#"{"alg":"RS256","crit":["b64"]}"#, "{}"),
            token("[1]", "{}"),
            token(r#"{"alg":"RS256"}"#, "[]"),
            token(r#"{"alg":"RS256"}"#, "not json"),
            "a.b".to_owned(),
            format!(
                "{}.{}.a=",
                URL_SAFE_NO_PAD.encode("{}"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
            format!(
                "{}.{}.a",
                URL_SAFE_NO_PAD.encode("{}"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
        ] {
            assert_eq!(
                Jws::parse(&bad),
                Err(Rejection::SignatureMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_tokens_are_told_by_their_alg() {
        for alg in PUBLIC_KEY_ALGS {
            assert!(
                is_issuer_token(&token(&format!(r#"{{"alg":"{alg}"}}"#), "{}")),
                "{alg}"
            );
        }
        for header in [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"es256"}"#,
            "{}",
        ] {
            assert!(!is_issuer_token(&token(header, "{}")), "{header}");
        }
        assert!(!is_issuer_token("eyJhbGciOiJFUzI1NiJ9"));
        assert!(!is_issuer_token("e30.e30"));
        assert!(!is_issuer_token("!!.e30.AA"));
    }

    #[test]
    fn identity_provider_claims_map_to_traits() {
        let aud = ["app-1".to_owned()];
        let map = pairs(&[
            ("email", "email"),
            ("name", "name"),
            ("https://acme.example/plan", "plan"),
            ("app_metadata.mrr", "mrr"),
            ("org.team", "team"),
            ("missing", "signup_date"),
        ]);
        let claims = check(
            &idp(&aud, &map),
            r#"{"iss":"https://idp.example/","aud":["other","app-1"],"sub":"auth0|42",
                "exp":1732410000,"iat":1732406390,"email":"ada@example.com","name":"Ada",
                "email_verified":true,"https://acme.example/plan":"pro",
                "app_metadata":{"mrr":49},"org":{"team":"core"},"picture":"https://x/y.png"}"#,
        )
        .unwrap();
        assert_eq!(claims.sub, "auth0|42");
        assert_eq!(claims.iat, 1_732_406_390);
        assert_eq!(claims.exp, Some(1_732_410_000));
        assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
        assert_eq!(claims.name.as_deref(), Some("Ada"));
        assert_eq!(claims.plan.as_deref(), Some("pro"));
        assert_eq!(claims.mrr, Some(49.0));
        assert_eq!(claims.signup_date, None);
        assert_eq!(
            claims.custom,
            vec![("team".to_owned(), Value::Str("core".into()))]
        );
        // The first claim mapped to a trait wins; a later one for the same trait is ignored.
        let twice = pairs(&[("a", "plan"), ("b", "plan")]);
        let claims = check(
            &idp(&aud, &twice),
            r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,
                "a":"first","b":"second"}"#,
        )
        .unwrap();
        assert_eq!(claims.plan.as_deref(), Some("first"));
        assert_eq!(claims.iat, NOW, "no iat: signed now");
    }

    #[test]
    fn the_signed_claims_format_takes_every_unregistered_claim() {
        let rules = IssuerRules {
            issuer: None,
            audiences: &[],
            user_claim: "sub",
            traits: None,
        };
        let claims = check(
            &rules,
            r#"{"sub":"42","iat":1732406400,"exp":1732406700,"iss":"anything","aud":"x",
                "jti":"j","nbf":1732406400,"plan":"pro","mrr":49.5,"seats":5}"#,
        )
        .unwrap();
        assert_eq!(claims.plan.as_deref(), Some("pro"));
        assert_eq!(claims.mrr, Some(49.5));
        assert_eq!(claims.custom, vec![("seats".to_owned(), Value::Int(5))]);
        // Another user claim is not a trait either; numeric ids become their decimal string.
        let rules = IssuerRules {
            user_claim: "uid",
            ..rules
        };
        let claims = check(&rules, r#"{"uid":1234,"exp":1732406700,"plan":"pro"}"#).unwrap();
        assert_eq!(claims.sub, "1234");
        for (id, text) in [
            ("-7", "-7"),
            ("18446744073709551615", "18446744073709551615"),
        ] {
            let payload = alloc::format!(r#"{{"uid":{id},"exp":1732406700}}"#);
            assert_eq!(check(&rules, &payload).unwrap().sub, text);
        }
        assert!(claims.custom.is_empty());
        // Trait rules are the payload's: reserved names and containers are refused.
        for bad in [
            r#"{"uid":"1","exp":1732406700,"mrr":-1}"#,
            r#"{"uid":"1","exp":1732406700,"plan":5}"#,
            r#"{"uid":"1","exp":1732406700,"roles":["a"]}"#,
            r#"{"uid":"1","exp":1732406700,"verified":true}"#,
        ] {
            assert_eq!(
                check(&rules, bad),
                Err(Rejection::SignatureMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_audience_and_time_rules() {
        let aud = ["app-1".to_owned(), "app-2".to_owned()];
        let map = pairs(&[]);
        let rules = idp(&aud, &map);
        let ok = r#"{"iss":"https://idp.example/","aud":"app-2","sub":"1","exp":1732406401}"#;
        assert!(check(&rules, ok).is_ok());
        let cases = [
            (
                r#"{"iss":"https://other.example/","aud":"app-1","sub":"1","exp":1732410000}"#,
                Rejection::UnknownIssuer,
            ),
            (
                r#"{"aud":"app-1","sub":"1","exp":1732410000}"#,
                Rejection::UnknownIssuer,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-3","sub":"1","exp":1732410000}"#,
                Rejection::AudienceMismatch,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":["app-3",1],"sub":"1","exp":1732410000}"#,
                Rejection::AudienceMismatch,
            ),
            (
                r#"{"iss":"https://idp.example/","sub":"1","exp":1732410000}"#,
                Rejection::AudienceMismatch,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1"}"#,
                Rejection::SignatureMalformed,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":"soon"}"#,
                Rejection::SignatureMalformed,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732406400}"#,
                Rejection::TokenExpired,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,"nbf":1732406461}"#,
                Rejection::TokenNotYetValid,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,"iat":1732406461}"#,
                Rejection::SignedAtInFuture,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,"iat":1732406400000}"#,
                Rejection::SignedAtNotSeconds,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"","exp":1732410000}"#,
                Rejection::SignatureMalformed,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":"a\nb","exp":1732410000}"#,
                Rejection::SignatureMalformed,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","sub":1.5,"exp":1732410000}"#,
                Rejection::SignatureMalformed,
            ),
            (
                r#"{"iss":"https://idp.example/","aud":"app-1","exp":1732410000}"#,
                Rejection::SignatureMalformed,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(check(&rules, payload).map(|_| ()), Err(want), "{payload}");
        }
        // The skew edges: nbf and iat exactly 60 s ahead pass; exp one second ahead passes.
        let edge = r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732406401,
                       "nbf":1732406460,"iat":1732406460}"#;
        assert_eq!(check(&rules, edge).unwrap().iat, 1_732_406_460);
        // Fractional NumericDates are truncated; absurd ones are malformed.
        let frac = r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732406401.9}"#;
        assert_eq!(check(&rules, frac).unwrap().exp, Some(1_732_406_401));
        let huge = r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1e300}"#;
        assert_eq!(
            check(&rules, huge).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
        let past = r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":-1e300}"#;
        assert_eq!(
            check(&rules, past).map(|_| ()),
            Err(Rejection::TokenExpired)
        );
        let ms =
            r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,"iat":9e15}"#;
        assert_eq!(
            check(&rules, ms).map(|_| ()),
            Err(Rejection::SignedAtNotSeconds)
        );
        // A mapped claim holding a container cannot be a trait.
        let map = pairs(&[("roles", "team")]);
        let rules = idp(&aud, &map);
        let roles = r#"{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,"roles":{"a":1}}"#;
        assert_eq!(
            check(&rules, roles).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
    }

    #[test]
    fn an_email_the_provider_calls_unverified_is_not_vouched_for() {
        let aud = ["app-1".to_owned()];
        let map = pairs(&[("email", "email"), ("name", "name")]);
        let rules = idp(&aud, &map);
        let with = |verified: &str| {
            let payload = alloc::format!(
                r#"{{"iss":"https://idp.example/","aud":"app-1","sub":"1","exp":1732410000,
                    "email":"ceo@victim.example","name":"Eve"{verified}}}"#
            );
            check(&rules, &payload).unwrap()
        };
        for unverified in [
            r#","email_verified":false"#,
            r#","email_verified":"false""#,
            r#","email_verified":0"#,
        ] {
            let c = with(unverified);
            assert_eq!(c.email, None, "{unverified}");
            assert_eq!(c.name.as_deref(), Some("Eve"));
        }
        for verified in [
            "",
            r#","email_verified":true"#,
            r#","email_verified":"true""#,
        ] {
            assert_eq!(
                with(verified).email.as_deref(),
                Some("ceo@victim.example"),
                "{verified}"
            );
        }
        // A backend's own tokens (the signed-claims format) carry what the backend vouches for.
        let own = IssuerRules {
            issuer: None,
            audiences: &[],
            user_claim: "sub",
            traits: None,
        };
        let c = check(
            &own,
            r#"{"sub":"1","exp":1732406700,"email":"a@b.example","email_verified":false}"#,
        );
        assert_eq!(c.unwrap().email.as_deref(), Some("a@b.example"));
    }

    #[test]
    fn a_token_lives_at_most_a_day() {
        let aud = ["app-1".to_owned()];
        let map = pairs(&[]);
        let rules = idp(&aud, &map);
        let day = MAX_LIFETIME_SECS;
        let token = |iat: i64, exp: i64| {
            alloc::format!(
                r#"{{"iss":"https://idp.example/","aud":"app-1","sub":"1","iat":{iat},"exp":{exp}}}"#
            )
        };
        assert!(check(&rules, &token(NOW - day, NOW + day)).is_ok());
        // An ID token issued two hours ago and valid for ten (Auth0's default) passes.
        assert!(check(&rules, &token(NOW - 7200, NOW + 8 * 3600)).is_ok());
        assert_eq!(
            check(&rules, &token(NOW - day - 1, NOW + 10)).map(|_| ()),
            Err(Rejection::TokenExpired)
        );
        assert_eq!(
            check(&rules, &token(NOW, NOW + day + 1)).map(|_| ()),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            check(&rules, &token(i64::MIN, NOW + 10)).map(|_| ()),
            Err(Rejection::TokenExpired)
        );
    }

    #[test]
    fn a_dotted_user_claim_is_no_trait_nor_is_its_object() {
        let rules = IssuerRules {
            issuer: None,
            audiences: &[],
            user_claim: "user.id",
            traits: None,
        };
        let c = check(
            &rules,
            r#"{"user":{"id":"u7"},"userland":"x","exp":1732406700}"#,
        )
        .unwrap();
        assert_eq!(c.sub, "u7");
        assert_eq!(
            c.custom,
            vec![("userland".to_owned(), Value::Str("x".into()))]
        );
    }

    #[test]
    fn a_kid_that_is_not_a_string_is_malformed() {
        let t = token(r#"{"alg":"ES256","kid":1}"#, "{}");
        assert_eq!(Jws::parse(&t), Err(Rejection::SignatureMalformed));
        let t = token(r#"{"alg":"ES256","kid":null}"#, "{}");
        assert_eq!(Jws::parse(&t), Err(Rejection::SignatureMalformed));
    }

    #[test]
    fn claims_are_found_by_name_then_by_path() {
        let map: serde_json::Map<String, Json> =
            serde_json::from_str(r#"{"a.b":1,"a":{"b":2,"c":{"d":3}},"s":"x"}"#).unwrap();
        assert_eq!(claim(&map, "a.b"), Some(&Json::from(1)));
        assert_eq!(claim(&map, "a.c.d"), Some(&Json::from(3)));
        assert_eq!(claim(&map, "s.t"), None);
        assert_eq!(claim(&map, "a.x"), None);
        assert_eq!(claim(&map, "x.y"), None);
    }

    #[test]
    fn scalars_convert_and_containers_do_not() {
        assert_eq!(scalar(&Json::Null), Ok(Value::Null));
        assert_eq!(scalar(&Json::Bool(true)), Ok(Value::Bool(true)));
        assert_eq!(scalar(&Json::from(-3)), Ok(Value::Int(-3)));
        assert_eq!(scalar(&Json::from(2.5)), Ok(Value::Float(2.5)));
        assert_eq!(
            scalar(&Json::from(u64::MAX)),
            Ok(Value::Float(u64::MAX as f64))
        );
        assert_eq!(scalar(&Json::from("s")), Ok(Value::Str("s".into())));
        assert_eq!(
            scalar(&serde_json::json!([])),
            Err(Rejection::SignatureMalformed)
        );
    }
}
