//! Why a signed or unsigned identify call is refused (the 401 rows of the decision table).
//!
//! Each variant has a stable machine code and a message that helps a developer fix their
//! integration. Messages never contain the expected signature or anything derived from a secret:
//! a mismatch says only that it did not match.

use core::fmt;

/// A 401 outcome of the decision table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// No signature and the workspace is in strict mode.
    SignatureRequired,
    /// The workspace requires signed claims and the call has none (seed form or unsigned).
    SignedClaimsRequired,
    /// Well-formed signature that matches no active secret.
    SignatureMismatch,
    /// `signedAt` (or `iat`) more than 300 s in the past, or the token's `exp` has passed.
    SignatureExpired,
    /// `signedAt` (or `iat`) more than 60 s in the future.
    SignedAtInFuture,
    /// A seed-form signature without `signedAt`.
    SignedAtMissing,
    /// `signedAt` looks like milliseconds since the epoch.
    SignedAtNotSeconds,
    /// Neither 64 hex digits nor a compact JWS.
    SignatureMalformed,
    /// A signed-claims token whose claims contradict the call (`sub` != user id, or traits differ).
    ClaimsMismatch,
    /// A public-key token whose `iss` names no token issuer of this workspace (or the workspace
    /// has none).
    UnknownIssuer,
    /// An issuer token whose `aud` holds none of the issuer's configured audiences.
    AudienceMismatch,
    /// An issuer token whose `kid` names no key of the issuer, even after its keys were fetched
    /// again.
    UnknownKeyId,
    /// An issuer token whose `alg` the issuer does not allow, or that its key cannot have made.
    AlgorithmNotAllowed,
    /// An issuer token whose `exp` has passed.
    TokenExpired,
    /// An issuer token whose `nbf` is more than 60 s in the future.
    TokenNotYetValid,
    /// The issuer's published keys have never been fetched (or are too old to trust): the call is
    /// answered 503, not 401, since the token may well be valid.
    IssuerUnavailable,
}

impl Rejection {
    /// Every variant, for exhaustive tests and metrics registration.
    pub const ALL: [Rejection; 16] = [
        Rejection::SignatureRequired,
        Rejection::SignedClaimsRequired,
        Rejection::SignatureMismatch,
        Rejection::SignatureExpired,
        Rejection::SignedAtInFuture,
        Rejection::SignedAtMissing,
        Rejection::SignedAtNotSeconds,
        Rejection::SignatureMalformed,
        Rejection::ClaimsMismatch,
        Rejection::UnknownIssuer,
        Rejection::AudienceMismatch,
        Rejection::UnknownKeyId,
        Rejection::AlgorithmNotAllowed,
        Rejection::TokenExpired,
        Rejection::TokenNotYetValid,
        Rejection::IssuerUnavailable,
    ];

    /// The stable machine code sent as `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::SignatureRequired => "signature_required",
            Rejection::SignedClaimsRequired => "signed_claims_required",
            Rejection::SignatureMismatch => "signature_mismatch",
            Rejection::SignatureExpired => "signature_expired",
            Rejection::SignedAtInFuture => "signed_at_in_future",
            Rejection::SignedAtMissing => "signed_at_missing",
            Rejection::SignedAtNotSeconds => "signed_at_not_seconds",
            Rejection::SignatureMalformed => "signature_malformed",
            Rejection::ClaimsMismatch => "claims_mismatch",
            Rejection::UnknownIssuer => "unknown_issuer",
            Rejection::AudienceMismatch => "audience_mismatch",
            Rejection::UnknownKeyId => "unknown_key_id",
            Rejection::AlgorithmNotAllowed => "algorithm_not_allowed",
            Rejection::TokenExpired => "token_expired",
            Rejection::TokenNotYetValid => "token_not_yet_valid",
            Rejection::IssuerUnavailable => "issuer_unavailable",
        }
    }

    /// The HTTP status of the answer: 401 for a refused call, 503 when the verifier could not
    /// decide (the issuer's keys are unknown), so the SDK retries instead of reporting a forgery.
    pub fn status(self) -> u16 {
        match self {
            Rejection::IssuerUnavailable => 503,
            _ => 401,
        }
    }

    /// A message for the developer integrating DropFix.
    pub fn message(self) -> &'static str {
        match self {
            Rejection::SignatureRequired => {
                "this workspace is in strict mode: identify() needs a signature and signedAt \
                 generated on your server"
            }
            Rejection::SignedClaimsRequired => {
                "this workspace requires signed claims: pass a HS256 token signed with your \
                 workspace's claims key (dfck_..., derived from the secret key) as `signature`; \
                 the plain user-id HMAC is not accepted"
            }
            Rejection::SignatureMismatch => {
                "the signature does not match this user id for any active secret key of this \
                 workspace: sign the exact user id string with the secret key shown on the \
                 console's Security page, used as-is (no trailing newline, not hex- or \
                 base64-decoded), and send the hex digest"
            }
            Rejection::SignatureExpired => {
                "the signature is older than 5 minutes: generate a fresh signature on every \
                 login instead of caching it"
            }
            Rejection::SignedAtInFuture => {
                "signedAt is more than 60 seconds in the future: check your server's clock"
            }
            Rejection::SignedAtMissing => {
                "a signature was sent without signedAt: send the Unix timestamp (seconds) taken \
                 when you signed"
            }
            Rejection::SignedAtNotSeconds => {
                "signedAt looks like milliseconds: send Unix seconds, e.g. \
                 Math.floor(Date.now() / 1000)"
            }
            Rejection::SignatureMalformed => {
                "the signature is neither 64 hex characters (HMAC-SHA256 hex digest) nor a \
                 signed-claims token; base64 digests are not accepted"
            }
            Rejection::ClaimsMismatch => {
                "the signed claims contradict this call: the token's sub must equal the user id \
                 and traits sent from the browser must match the signed ones"
            }
            Rejection::UnknownIssuer => {
                "the token's issuer (iss) is not one this workspace trusts: register it as a \
                 token issuer (`dropfix-server workspace add-issuer`, or the console's Security \
                 page) with the exact iss your provider puts in its tokens, or send a token of an \
                 issuer you registered"
            }
            Rejection::AudienceMismatch => {
                "the token's audience (aud) is none of the audiences registered for its issuer: \
                 add your app's client id (or API identifier) as an audience of the issuer, or \
                 request the token for that audience"
            }
            Rejection::UnknownKeyId => {
                "no key of this issuer has the token's kid (an identity provider's keys were \
                 fetched again to look for it): register the public key with that kid, or check \
                 that the token comes from the issuer whose keys you registered"
            }
            Rejection::AlgorithmNotAllowed => {
                "the token's alg is not allowed for this issuer, or its key cannot make it: sign \
                 with an algorithm the issuer allows (ES256, EdDSA, RS256 or PS256 with a key of \
                 that type); none and HS256 with a public key are never accepted"
            }
            Rejection::TokenExpired => {
                "the token's exp has passed: send the fresh token your provider or backend issues \
                 (identity provider SDKs refresh it: getIdToken(), getToken()), not a cached one"
            }
            Rejection::TokenNotYetValid => {
                "the token's nbf is more than 60 seconds in the future: check the clock of the \
                 server that signed it"
            }
            Rejection::IssuerUnavailable => {
                "the keys of this token's issuer could not be fetched from its JWKS URL yet: the \
                 call was not stored; retry shortly (the verifier's console shows the fetch error)"
            }
        }
    }
}

impl Rejection {
    /// [`Rejection::message`] for a call whose signature is a signed-claims token
    /// ([`crate::claims::is_jws_form`]): the checks both forms share say what a token needs
    /// instead of what the seed form's hex digest needs.
    pub fn token_message(self) -> &'static str {
        match self {
            Rejection::SignatureMismatch => {
                "the signed-claims token does not verify with any active key of this workspace: \
                 it was changed after signing, or signed with something other than the claims \
                 key (dfck_..., derived from the secret key; not the secret itself). Sign it on \
                 your server with HS256 and pass it unchanged"
            }
            Rejection::SignatureMalformed => {
                "the signed-claims token is not one DropFix accepts: a compact HS256 JWS (no \
                 crit header) whose payload has sub (a string), iat (Unix seconds), optional exp \
                 and nbf, and valid trait values (plan, name, email strings; mrr a non-negative \
                 number; custom traits scalars with no reserved names)"
            }
            Rejection::SignedAtMissing => {
                "the signed-claims token has no iat claim: add iat, the Unix time in seconds \
                 when your server signed it"
            }
            other => other.message(),
        }
    }

    /// [`Rejection::message`] for a public-key (issuer) token ([`crate::issuer`]).
    pub fn issuer_token_message(self) -> &'static str {
        match self {
            Rejection::SignatureMismatch => {
                "the token's signature does not verify with its issuer's key: it was changed after \
                 signing, or signed with a private key whose public half is not the one \
                 registered for this kid"
            }
            Rejection::SignatureMalformed => {
                "the token is not one DropFix accepts from an issuer: a compact JWS (no crit \
                 header) whose payload has exp (Unix seconds), the user id claim the issuer is \
                 configured with (sub by default) as a string, and trait claims with valid values"
            }
            other => other.message(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_messages_and_statuses() {
        for r in Rejection::ALL {
            let msg = r.issuer_token_message();
            match r {
                Rejection::SignatureMismatch | Rejection::SignatureMalformed => {
                    assert!(msg.contains("issuer") && !msg.contains("hex"), "{msg}");
                    assert_ne!(msg, r.message());
                }
                _ => assert_eq!(msg, r.message()),
            }
            let status = if r == Rejection::IssuerUnavailable {
                503
            } else {
                401
            };
            assert_eq!(r.status(), status, "{r:?}");
        }
        let codes: alloc::vec::Vec<&str> = Rejection::ALL.iter().map(|r| r.code()).collect();
        for code in [
            "unknown_issuer",
            "audience_mismatch",
            "unknown_key_id",
            "token_expired",
        ] {
            assert!(codes.contains(&code), "{code}");
        }
    }

    #[test]
    fn token_messages_speak_of_tokens() {
        for r in Rejection::ALL {
            let (seed, token) = (r.message(), r.token_message());
            match r {
                Rejection::SignatureMismatch
                | Rejection::SignatureMalformed
                | Rejection::SignedAtMissing => {
                    assert!(token.contains("token") && !token.contains("hex"), "{token}");
                    assert_ne!(seed, token);
                }
                _ => assert_eq!(seed, token),
            }
        }
    }
}
