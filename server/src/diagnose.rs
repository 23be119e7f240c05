//! `dropfix-server debug-signature`: given the workspace secret, the user id, the signature and
//! `signedAt` an integration sent, says which check fails and what to fix.
//!
//! It runs on the operator's machine with the secret in hand, so unlike a 401 body it may try
//! the usual mistakes and name the one that reproduces the signature: a secret with a trailing
//! newline, a hex- or base64-decoded secret, a base64 digest, the email or a reformatted number
//! signed instead of the exact id, `signedAt` in milliseconds, a stale or future timestamp, and a
//! signed-claims token keyed with the raw secret instead of the workspace's claims key. A
//! public-key token is explained against the workspace's token issuers instead
//! ([`diagnose_issuer_token`]).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dropfix_core::claims;
use dropfix_core::issuer::Jws;
use dropfix_core::timestamp::{MAX_AGE_SECS, MAX_FUTURE_SKEW_SECS, MILLISECONDS_THRESHOLD};
use dropfix_core::{Rejection, SecretKey, TokenIssuers, seed};
use hmac::{KeyInit, Mac};
use serde::Serialize;

use crate::issuers::WorkspaceIssuers;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What the operator gives the command.
#[derive(Debug, Clone)]
pub struct Input {
    pub secret: SecretKey,
    pub user_id: String,
    pub signature: String,
    pub signed_at: Option<i64>,
    pub now: i64,
    /// The user's email, to test "signed the email instead of the id".
    pub email: Option<String>,
}

/// One check and its result.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether the verifier would accept this call (200).
    pub valid: bool,
    /// The 401 code the verifier would answer, if any.
    pub code: Option<&'static str>,
    pub findings: Vec<Finding>,
    /// The one thing to change, when the checks found it.
    pub fix: Option<String>,
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// The 32 digest bytes a signature encodes, and the encoding it used.
fn decode_signature(sig: &str) -> Option<([u8; 32], &'static str)> {
    let s = sig.trim();
    if s.len() == 64
        && let Ok(b) = hex::decode(s)
    {
        return b.try_into().ok().map(|b| (b, "hex"));
    }
    for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(s)
            && let Ok(b) = <[u8; 32]>::try_from(b)
        {
            return Some((b, "base64"));
        }
    }
    None
}

/// Key bytes an integration might have used by mistake, with what that mistake is.
fn key_hypotheses(secret: &str) -> Vec<(Vec<u8>, String)> {
    let mut out = vec![(secret.as_bytes().to_vec(), String::new())];
    for (suffix, what) in [
        ("\n", "a trailing newline"),
        ("\r\n", "a trailing CRLF"),
        (" ", "a trailing space"),
    ] {
        out.push((
            format!("{secret}{suffix}").into_bytes(),
            format!("the backend's secret has {what} (read from an env file?): trim it"),
        ));
    }
    if secret.trim() != secret {
        out.push((
            secret.trim().as_bytes().to_vec(),
            "the secret given here has surrounding whitespace; the backend used it trimmed".into(),
        ));
    }
    let body = secret
        .strip_prefix(dropfix_core::SECRET_PREFIX)
        .unwrap_or(secret);
    if let Ok(raw) = hex::decode(body) {
        out.push((
            raw,
            "the backend hex-decoded the secret: use the secret string as-is (its UTF-8 bytes) \
             as the HMAC key"
                .into(),
        ));
    }
    for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
        if let Ok(raw) = engine.decode(body) {
            out.push((
                raw,
                "the backend base64-decoded the secret: use the secret string as-is".into(),
            ));
        }
    }
    out
}

/// Messages an integration might have signed instead of the exact user id.
fn message_hypotheses(user_id: &str, email: Option<&str>) -> Vec<(String, String)> {
    let mut out = vec![(user_id.to_string(), String::new())];
    let mut add = |m: String, why: String| {
        if m != user_id && !out.iter().any(|(x, _)| *x == m) {
            out.push((m, why));
        }
    };
    add(
        user_id.trim().to_string(),
        "the id signed had no surrounding whitespace; send exactly the id you signed".into(),
    );
    if let Some(email) = email {
        add(
            email.to_string(),
            "the backend signed the email, not the user id: sign the same id you pass to \
             identify()"
                .into(),
        );
    }
    if let Ok(n) = user_id.trim().parse::<f64>() {
        for formatted in [format!("{n:.1}"), format!("{n}"), format!("{:.0}", n)] {
            add(
                formatted.clone(),
                format!(
                    "the backend signed {formatted:?}: a number formatted differently from the \
                     id identify() sends; sign the id's exact decimal string"
                ),
            );
        }
    }
    add(
        user_id.to_lowercase(),
        "the backend signed the id in lower case".into(),
    );
    add(
        user_id.to_uppercase(),
        "the backend signed the id in upper case".into(),
    );
    out
}

fn timestamp_finding(signed_at: Option<i64>, now: i64) -> (Finding, Option<(Rejection, String)>) {
    let Some(t) = signed_at else {
        return (
            Finding {
                check: "signedAt",
                ok: false,
                detail:
                    "missing: the seed form needs signedAt (Unix seconds) next to the signature"
                        .into(),
            },
            Some((
                Rejection::SignedAtMissing,
                "pass dropfix_signed_at from your backend as signedAt".into(),
            )),
        );
    };
    let fail = |detail: String, r: Rejection, fix: &str| {
        (
            Finding {
                check: "signedAt",
                ok: false,
                detail,
            },
            Some((r, fix.to_string())),
        )
    };
    if t >= MILLISECONDS_THRESHOLD {
        return fail(
            format!(
                "{t} is in milliseconds; DropFix wants Unix seconds ({} here)",
                t / 1000
            ),
            Rejection::SignedAtNotSeconds,
            "use Math.floor(Date.now() / 1000) / int(time.time()) / Time.now.to_i",
        );
    }
    let age = now.saturating_sub(t);
    if age > MAX_AGE_SECS {
        return fail(
            format!("signed {age} s ago; signatures expire after {MAX_AGE_SECS} s"),
            Rejection::SignatureExpired,
            "sign on every login or page load instead of caching the signature",
        );
    }
    if -age > MAX_FUTURE_SKEW_SECS {
        return fail(
            format!(
                "{} s in the future (more than {MAX_FUTURE_SKEW_SECS} s ahead)",
                -age
            ),
            Rejection::SignedAtInFuture,
            "the backend's clock is ahead: sync it with NTP",
        );
    }
    (
        Finding {
            check: "signedAt",
            ok: true,
            detail: format!("{age} s old, within the {MAX_AGE_SECS} s window"),
        },
        None,
    )
}

/// Runs every check.
pub fn diagnose(input: &Input) -> Report {
    let mut findings = Vec::new();
    let secret = input.secret.expose_secret();
    if claims::is_jws_form(input.signature.trim()) {
        return diagnose_token(input, findings);
    }
    let Some((digest, encoding)) = decode_signature(&input.signature) else {
        findings.push(Finding {
            check: "format",
            ok: false,
            detail: format!(
                "{} characters, neither 64 hex digits nor a signed-claims token",
                input.signature.trim().len()
            ),
        });
        return Report {
            valid: false,
            code: Some(Rejection::SignatureMalformed.code()),
            findings,
            fix: Some("send the hex digest: createHmac(...).digest('hex') / hexdigest()".into()),
        };
    };
    let mut fix = None;
    let mut code = None;
    if encoding == "base64" {
        findings.push(Finding {
            check: "format",
            ok: false,
            detail: "the signature is base64; DropFix wants the 64-character hex digest".into(),
        });
        fix = Some("send the hex digest: .digest('hex') / hexdigest() / hexdigest".into());
        code = Some(Rejection::SignatureMalformed.code());
    } else {
        findings.push(Finding {
            check: "format",
            ok: true,
            detail: "64 hex digits".into(),
        });
    }

    let exact = digest == mac(secret.as_bytes(), input.user_id.as_bytes());
    if exact {
        findings.push(Finding {
            check: "signature",
            ok: true,
            detail: "matches HMAC-SHA256(secret, user id)".into(),
        });
    } else {
        let mut explained = None;
        'search: for (key, key_why) in key_hypotheses(secret) {
            for (msg, msg_why) in message_hypotheses(&input.user_id, input.email.as_deref()) {
                if (!key_why.is_empty() || !msg_why.is_empty())
                    && digest == mac(&key, msg.as_bytes())
                {
                    explained = Some(
                        [key_why, msg_why]
                            .into_iter()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join("; and "),
                    );
                    break 'search;
                }
            }
        }
        findings.push(Finding {
            check: "signature",
            ok: false,
            detail: match &explained {
                Some(why) => format!("does not match the exact user id and secret, but: {why}"),
                None => "matches none of: this secret with the exact user id, the secret with a \
                         trailing newline or space, the hex/base64-decoded secret, a \
                         reformatted or re-cased id, the email. Likely a different secret (another \
                         workspace, or a rotated-out key) or a different user id"
                    .into(),
            },
        });
        fix = fix.or(explained).or_else(|| {
            Some(
                "check that the backend signs with this workspace's current secret and the exact \
                 id string passed to identify()"
                    .into(),
            )
        });
        code = code.or(Some(Rejection::SignatureMismatch.code()));
    }
    let (finding, problem) = timestamp_finding(input.signed_at, input.now);
    findings.push(finding);
    if let Some((r, f)) = problem {
        code = code.or(Some(r.code()));
        fix = fix.or(Some(f));
    }
    // Sanity: the verdict must agree with the core's own verification.
    debug_assert_eq!(
        code.is_none(),
        exact
            && encoding == "hex"
            && matches!(
                seed::verify(
                    std::slice::from_ref(&input.secret),
                    &input.user_id,
                    &input.signature
                ),
                seed::SeedCheck::Valid { .. }
            )
            && timestamp_finding(input.signed_at, input.now).1.is_none()
    );
    Report {
        valid: code.is_none(),
        code,
        findings,
        fix,
    }
}

fn diagnose_token(input: &Input, mut findings: Vec<Finding>) -> Report {
    findings.push(Finding {
        check: "format",
        ok: true,
        detail: "a signed-claims token (compact JWS)".into(),
    });
    let raw_key = raw_secret_token(input);
    match claims::verify(
        std::slice::from_ref(&input.secret),
        input.signature.trim(),
        input.now,
    ) {
        Ok((c, _)) if c.sub != input.user_id => {
            findings.push(Finding {
                check: "sub",
                ok: false,
                detail: format!(
                    "the token's sub is {:?}, identify() sends {:?}",
                    c.sub, input.user_id
                ),
            });
            Report {
                valid: false,
                code: Some(Rejection::ClaimsMismatch.code()),
                findings,
                fix: Some("issue the token for the same user id identify() sends".into()),
            }
        }
        Ok(_) => {
            findings.push(Finding {
                check: "token",
                ok: true,
                detail: "HS256 signature, iat and exp check out for this secret".into(),
            });
            Report {
                valid: true,
                code: None,
                findings,
                fix: None,
            }
        }
        Err(Rejection::SignatureMismatch) if raw_key.is_some() => {
            let why = raw_key.unwrap_or_default();
            findings.push(Finding {
                check: "token",
                ok: false,
                detail: format!(
                    "the token's HS256 signature was made with {why} instead of the workspace's \
                     claims key: tokens and seed-form hashes use separate keys"
                ),
            });
            Report {
                valid: false,
                code: Some(Rejection::SignatureMismatch.code()),
                findings,
                fix: Some(
                    "sign tokens with the claims key (dfck_...), not the secret key (dfsk_...): \
                     signClaims() from dropfix/server derives it from the secret, claimsKey() \
                     returns it for your JWT library (DROPFIX_CLAIMS_KEY); keep the secret for the \
                     seed-form hash only"
                        .into(),
                ),
            }
        }
        Err(r) => {
            findings.push(Finding {
                check: "token",
                ok: false,
                detail: r.message().to_string(),
            });
            Report {
                valid: false,
                code: Some(r.code()),
                findings,
                fix: Some(r.message().to_string()),
            }
        }
    }
}

/// Explains a public-key (issuer) token against a workspace's token issuers: which issuer its
/// `iss` selects, whether the issuer allows its `alg` and has its `kid`, the signature, and the
/// claims (`aud`, `exp`, `nbf`, the user claim), then the verdict the verifier would give.
pub fn diagnose_issuer_token(
    issuers: &WorkspaceIssuers<'_>,
    user_id: &str,
    token: &str,
    now: i64,
) -> Report {
    let mut findings = Vec::new();
    let report = |findings, code: Option<Rejection>, fix: Option<String>| Report {
        valid: code.is_none(),
        code: code.map(Rejection::code),
        findings,
        fix,
    };
    let jws = match Jws::parse(token) {
        Ok(jws) => jws,
        Err(r) => {
            findings.push(Finding {
                check: "format",
                ok: false,
                detail: "not a compact JWS with JSON header and payload (or a crit header)".into(),
            });
            return report(findings, Some(r), Some(r.issuer_token_message().into()));
        }
    };
    let alg = jws.alg().unwrap_or_default();
    findings.push(Finding {
        check: "format",
        ok: true,
        detail: format!(
            "a public-key token: alg {alg}, kid {}, iss {}",
            jws.kid().map_or("(none)".into(), |k| format!("{k:?}")),
            jws.iss().map_or("(none)".into(), |i| format!("{i:?}")),
        ),
    });
    let Some(issuer) = issuers.issuers.iter().find(|i| i.claims_token(jws.iss())) else {
        let known: Vec<String> = issuers
            .issuers
            .iter()
            .map(|i| {
                let iss = i.config.iss.as_deref().unwrap_or("(no iss)");
                format!("{} expects {iss:?}", i.config.name)
            })
            .collect();
        findings.push(Finding {
            check: "issuer",
            ok: false,
            detail: if known.is_empty() {
                "this workspace has no token issuer".into()
            } else {
                format!(
                    "no issuer of this workspace has this iss: {}",
                    known.join("; ")
                )
            },
        });
        let r = Rejection::UnknownIssuer;
        return report(findings, Some(r), Some(r.message().into()));
    };
    let source = match &issuer.config.jwks_url {
        Some(url) => format!("keys from {url}"),
        None => "static public keys".into(),
    };
    findings.push(Finding {
        check: "issuer",
        ok: true,
        detail: format!("issuer {:?} ({source})", issuer.config.name),
    });
    if let Some(keys) = issuers.keys_of(issuer) {
        let kids = keys.kids();
        let known = jws.kid().is_none_or(|k| keys.has_kid(k));
        findings.push(Finding {
            check: "key",
            ok: known,
            detail: format!("the issuer's keys: {}", kids.join(", ")),
        });
    }
    let outcome = issuers.verify(token, now);
    match &outcome {
        Ok((claims, _)) => {
            findings.push(Finding {
                check: "token",
                ok: true,
                detail: format!(
                    "signature verifies; audience and times check out (expires {})",
                    claims.exp.map_or("never".into(), crate::workspace::rfc3339)
                ),
            });
            let same = claims.sub == user_id;
            findings.push(Finding {
                check: "user",
                ok: same,
                detail: format!(
                    "the token's user claim ({}) is {:?}, identify() sends {user_id:?}",
                    issuer.config.user_claim, claims.sub
                ),
            });
            if !same {
                let fix = "call identify() with the user id of the token (the issuer's user claim)";
                return report(findings, Some(Rejection::ClaimsMismatch), Some(fix.into()));
            }
            report(findings, None, None)
        }
        Err(r) => {
            findings.push(Finding {
                check: "token",
                ok: false,
                detail: r.issuer_token_message().into(),
            });
            report(findings, Some(*r), Some(r.issuer_token_message().into()))
        }
    }
}

/// Whether the token's MAC is HMAC-SHA256 keyed with the secret itself (or one of the usual
/// mangled forms of it) rather than the claims key: the mistake of a backend that hands
/// `DROPFIX_SECRET_KEY` to its JWT library. Names the key used; never the expected signature.
fn raw_secret_token(input: &Input) -> Option<String> {
    let token = input.signature.trim();
    let (signing_input, tag_b64) = token.rsplit_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag_b64).ok()?;
    key_hypotheses(input.secret.expose_secret())
        .into_iter()
        .find(|(key, _)| tag == mac(key, signing_input.as_bytes()))
        .map(|(_, why)| {
            if why.is_empty() {
                "the raw secret key".to_string()
            } else {
                format!("the raw secret key ({why})")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_406_400;

    fn input(sig: String, signed_at: Option<i64>) -> Input {
        Input {
            secret: SecretKey::new("dfsk_0123456789abcdef0123456789abcdef"),
            user_id: "42".into(),
            signature: sig,
            signed_at,
            now: NOW,
            email: Some("ada@example.com".into()),
        }
    }

    fn sig(key: &[u8], msg: &str) -> String {
        hex::encode(mac(key, msg.as_bytes()))
    }

    const SECRET: &str = "dfsk_0123456789abcdef0123456789abcdef";

    #[test]
    fn valid_call() {
        let r = diagnose(&input(sig(SECRET.as_bytes(), "42"), Some(NOW - 10)));
        assert!(r.valid, "{r:?}");
        assert_eq!(r.code, None);
    }

    #[test]
    fn names_the_mistake() {
        let cases: Vec<(String, Option<i64>, &str, &str)> = vec![
            (
                sig(format!("{SECRET}\n").as_bytes(), "42"),
                Some(NOW),
                "signature_mismatch",
                "trailing newline",
            ),
            (
                sig(&hex::decode(&SECRET[5..]).unwrap(), "42"),
                Some(NOW),
                "signature_mismatch",
                "hex-decoded",
            ),
            (
                sig(SECRET.as_bytes(), "ada@example.com"),
                Some(NOW),
                "signature_mismatch",
                "email",
            ),
            (
                sig(SECRET.as_bytes(), "42.0"),
                Some(NOW),
                "signature_mismatch",
                "formatted differently",
            ),
            (
                STANDARD.encode(mac(SECRET.as_bytes(), b"42")),
                Some(NOW),
                "signature_malformed",
                "hex digest",
            ),
            (
                sig(SECRET.as_bytes(), "42"),
                Some(NOW * 1000),
                "signed_at_not_seconds",
                "Math.floor",
            ),
            (
                sig(SECRET.as_bytes(), "42"),
                Some(NOW - 301),
                "signature_expired",
                "caching",
            ),
            (
                sig(SECRET.as_bytes(), "42"),
                Some(NOW + 120),
                "signed_at_in_future",
                "NTP",
            ),
            (
                sig(SECRET.as_bytes(), "42"),
                None,
                "signed_at_missing",
                "signedAt",
            ),
            (
                sig(b"another secret", "42"),
                Some(NOW),
                "signature_mismatch",
                "different secret",
            ),
            ("xyz".into(), Some(NOW), "signature_malformed", "hex digest"),
        ];
        for (s, at, code, hint) in cases {
            let r = diagnose(&input(s, at));
            assert!(!r.valid);
            assert_eq!(r.code, Some(code), "{r:?}");
            let text = format!("{:?} {:?}", r.fix, r.findings);
            assert!(text.contains(hint), "{hint:?} not in {text}");
        }
    }

    #[test]
    fn tokens() {
        let token_for = |sub: &str| {
            let claims = claims::Claims {
                sub: sub.into(),
                iat: NOW,
                ..Default::default()
            };
            claims::sign(&SecretKey::new(SECRET), &claims)
        };
        let r = diagnose(&input(token_for("7"), None));
        assert_eq!(r.code, Some("claims_mismatch"), "{r:?}");
        assert!(diagnose(&input(token_for("42"), None)).valid);
    }

    /// A token keyed with the secret itself (what a JWT library given DROPFIX_SECRET_KEY makes) is
    /// named as such, with the fix, and without the expected signature or the claims key.
    #[test]
    fn token_signed_with_the_raw_secret() {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"42","iat":{NOW}}}"#))
        );
        let secret = SecretKey::new(SECRET);
        let expected_tag = URL_SAFE_NO_PAD.encode(mac(
            secret.expose_claims_key().as_bytes(),
            signing_input.as_bytes(),
        ));
        for (key, hint) in [
            (SECRET.to_string(), "raw secret key"),
            (format!("{SECRET}\n"), "trailing newline"),
        ] {
            let tag = URL_SAFE_NO_PAD.encode(mac(key.as_bytes(), signing_input.as_bytes()));
            let r = diagnose(&input(format!("{signing_input}.{tag}"), None));
            assert!(!r.valid);
            assert_eq!(r.code, Some("signature_mismatch"), "{r:?}");
            let text = format!("{:?} {:?}", r.fix, r.findings);
            assert!(text.contains(hint), "{hint:?} not in {text}");
            assert!(text.contains("claims key"), "{text}");
            assert!(!text.contains(&expected_tag), "{text}");
            assert!(!text.contains(&secret.expose_claims_key()[5..]), "{text}");
        }
        // A token keyed with an unrelated key is an ordinary mismatch, not this diagnosis.
        let tag = URL_SAFE_NO_PAD.encode(mac(b"another key", signing_input.as_bytes()));
        let r = diagnose(&input(format!("{signing_input}.{tag}"), None));
        assert_eq!(r.code, Some("signature_mismatch"));
        assert!(
            !format!("{:?}", r.fix).contains("claims key (dfck_"),
            "{r:?}"
        );
    }
}
