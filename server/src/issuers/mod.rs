//! Token issuers: who may vouch for a user with a *public-key* token instead of the workspace's
//! shared secret. An issuer is either the customer's own backend, holding a private key whose
//! public half is registered here (static keys), or the customer's identity provider, whose keys
//! are fetched from its JWKS URL. Either way the workspace stores nothing that can mint a user.
//!
//! - [`keys`]: public keys from PEM, JWK and JWKS, checked before they are trusted;
//! - [`verify`]: signature checks (`ring`);
//! - [`fetch`]: one JWKS fetched over HTTPS, SSRF-safe; [`jwks`]: the process's cache of the
//!   JWKS URLs in use, refreshed in the background;
//! - this module: an issuer's configuration as stored and its rules, and [`WorkspaceIssuers`],
//!   which the decision ([`dropfix_core::decide`]) asks about public-key tokens.
//!
//! Choosing the issuer: a token's (unverified) `iss` picks the issuers configured with that
//! `iss`; a token without `iss` can only be from an issuer of static keys configured without
//! one. The key is picked by `kid` (every key of the issuer when the token names none); the
//! algorithm must be allowed by the issuer *and* made by the key's family, so neither `none`
//! nor an HS256 MAC keyed with a public key can pass (HS256 never even reaches an issuer: it is
//! the claims key's, see [`dropfix_core::issuer::PUBLIC_KEY_ALGS`]). Headers that carry a key
//! (`jwk`, `jku`, `x5u`, `x5c`) are ignored.

pub mod fetch;
pub mod jwks;
pub mod keys;
pub mod verify;

use std::fmt;
use std::sync::Arc;

use dropfix_core::claims::Claims;
use dropfix_core::issuer::{IssuerRules, Jws, PUBLIC_KEY_ALGS, check_claims};
use dropfix_core::{Rejection, TokenIssuers};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use keys::{KeySet, PublicKey};

/// The algorithms an issuer allows when its configuration names none (each key still verifies
/// only what its family makes).
pub const DEFAULT_ALGORITHMS: [&str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];
/// At most this many issuers per workspace.
pub const MAX_ISSUERS: usize = 16;
const MAX_AUDIENCES: usize = 16;
const MAX_CLAIM_MAPS: usize = 32;
const MAX_TEXT: usize = 512;

/// One claim of an identity provider's token mapped to a trait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMap {
    /// A top-level claim name (a namespaced URL too) or a dotted path (`app_metadata.plan`).
    pub claim: String,
    /// `name`, `email`, `plan`, `mrr`, `signup_date` or a custom trait name.
    #[serde(rename = "trait")]
    pub to: String,
}

/// An issuer as stored (a JSON array of these is the workspace's `token_issuers` column) and as
/// the admin API shows it. Keys are public JWKs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Unique in the workspace: `[A-Za-z0-9._-]{1,64}`.
    pub name: String,
    /// The `iss` its tokens carry; `None` (static keys only): its tokens carry no `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Accepted `aud` values; required for a JWKS issuer, optional for static keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The claim that holds the user id.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// `None`: the signed-claims format (every unregistered claim is a trait); the default for
    /// static keys. `Some`: only these claims, the default for JWKS issuers being `email` and
    /// `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Vec<ClaimMap>>,
    /// The JWS algorithms its tokens may use.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Where its keys are published (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Its static public keys, as public JWKs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Json>,
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect()
}

/// The default trait mapping of an identity provider's token.
pub fn default_idp_claims() -> Vec<ClaimMap> {
    ["email", "name"]
        .iter()
        .map(|c| ClaimMap {
            claim: (*c).into(),
            to: (*c).into(),
        })
        .collect()
}

/// An issuer as an operator describes it (the admin API's body, the CLI's flags, the console's
/// form): public keys as PEM text, JWK or JWKS objects, and defaults left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerInput {
    pub name: String,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub user_claim: Option<String>,
    #[serde(default)]
    pub claims: Option<Vec<ClaimMap>>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM text (public keys or certificates), JWK objects, or JWKS objects.
    #[serde(default)]
    pub public_keys: Vec<Json>,
    /// The kid of the one key `public_keys` holds, when it has none of its own.
    #[serde(default)]
    pub kid: Option<String>,
}

impl IssuerInput {
    /// The configuration to store: keys read and rewritten as public JWKs, defaults filled in
    /// (`sub`; the default algorithms; for a JWKS issuer the `email` and `name` claims). Checked
    /// by [`IssuerConfig::check`] before it is stored.
    pub fn into_config(self) -> Result<IssuerConfig, String> {
        let mut keys = Vec::new();
        for entry in &self.public_keys {
            let text = match entry {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            };
            keys.extend(keys::parse_keys(&text, None).map_err(|e| e.0)?);
        }
        if let Some(kid) = &self.kid {
            match keys.as_mut_slice() {
                [one] => one.kid = Some(kid.clone()),
                _ => {
                    return Err(
                        "kid names one key: give each of several keys its kid in a JWKS".into(),
                    );
                }
            }
        }
        let claims = match (self.claims, &self.jwks_url) {
            (Some(map), _) => Some(map),
            (None, Some(_)) => Some(default_idp_claims()),
            (None, None) => None,
        };
        Ok(IssuerConfig {
            name: self.name,
            iss: self.iss.filter(|s| !s.is_empty()),
            audiences: self.audiences,
            user_claim: self.user_claim.unwrap_or_else(default_user_claim),
            claims,
            algorithms: self.algorithms.unwrap_or_else(default_algorithms),
            jwks_url: self.jwks_url.filter(|s| !s.is_empty()),
            keys: keys.iter().map(PublicKey::to_jwk).collect(),
        })
    }
}

/// Reads `CLAIM=TRAIT` (the CLI's `--map`): split at the last `=`, as trait names hold none.
pub fn parse_claim_map(s: &str) -> Result<ClaimMap, String> {
    match s.rsplit_once('=') {
        Some((claim, to)) if !claim.is_empty() && !to.is_empty() => Ok(ClaimMap {
            claim: claim.to_owned(),
            to: to.to_owned(),
        }),
        _ => Err(format!(
            "expected CLAIM=TRAIT (e.g. https://example.com/plan=plan), got {s:?}"
        )),
    }
}

/// A checked issuer, ready to verify.
#[derive(Clone, PartialEq)]
pub struct Issuer {
    pub config: IssuerConfig,
    /// Parsed static keys (`None` for a JWKS issuer).
    pub static_keys: Option<Arc<KeySet>>,
    /// [`IssuerConfig::claims`] as the core's `(claim, trait)` pairs.
    trait_pairs: Option<Vec<(String, String)>>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.config.name)
            .field("iss", &self.config.iss)
            .field("jwks_url", &self.config.jwks_url)
            .finish_non_exhaustive()
    }
}

fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(format!(
            "{what} must be 1 to {MAX_TEXT} bytes without control characters"
        ));
    }
    Ok(())
}

/// Whether `url` is an https URL with a host (the fetcher checks the address it resolves to).
fn check_jwks_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| format!("jwks_url {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("jwks_url must be https (got {url:?})"));
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if uri.host().is_none_or(str::is_empty) || authority.contains('@') {
        return Err(format!("jwks_url {url:?} needs a host and no user info"));
    }
    check_text("jwks_url", url)
}

fn check_trait_name(name: &str) -> Result<(), String> {
    const STANDARD: [&str; 5] = ["name", "email", "plan", "mrr", "signup_date"];
    if STANDARD.contains(&name) {
        return Ok(());
    }
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(format!(
            "trait {name:?} is not a valid trait name (1 to 64 bytes)"
        ));
    }
    if dropfix_core::is_reserved_trait(name)
        || dropfix_core::claims::REGISTERED_CLAIMS.contains(&name)
        || name.to_ascii_lowercase().contains("secret")
    {
        return Err(format!("trait {name:?} is a reserved name"));
    }
    Ok(())
}

impl IssuerConfig {
    /// Checks the configuration and parses its keys. Every refusal says what to change.
    pub fn check(self) -> Result<Issuer, String> {
        let c = self;
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(format!(
                "issuer name {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                c.name
            ));
        }
        if let Some(iss) = &c.iss {
            check_text("iss", iss)?;
        }
        if c.audiences.len() > MAX_AUDIENCES {
            return Err(format!("at most {MAX_AUDIENCES} audiences"));
        }
        for aud in &c.audiences {
            check_text("audience", aud)?;
        }
        check_text("user_claim", &c.user_claim)?;
        if let Some(map) = &c.claims {
            if map.len() > MAX_CLAIM_MAPS {
                return Err(format!("at most {MAX_CLAIM_MAPS} claim mappings"));
            }
            for m in map {
                check_text("claim", &m.claim)?;
                check_trait_name(&m.to)?;
                if m.claim == c.user_claim {
                    return Err(format!(
                        "claim {:?} is the user id claim; it cannot also be a trait",
                        m.claim
                    ));
                }
            }
        }
        if c.algorithms.is_empty() {
            return Err("algorithms must name at least one of ES256, EdDSA, RS256, PS256".into());
        }
        for alg in &c.algorithms {
            if !PUBLIC_KEY_ALGS.contains(&alg.as_str()) {
                return Err(format!(
                    "algorithm {alg:?} is not supported: use {}",
                    PUBLIC_KEY_ALGS.join(", ")
                ));
            }
        }
        let static_keys = match (&c.jwks_url, c.keys.is_empty()) {
            (Some(_), false) => {
                return Err("an issuer has either a jwks_url or static keys, not both".into());
            }
            (None, true) => {
                return Err("an issuer needs a jwks_url or at least one public key".into());
            }
            (Some(url), true) => {
                check_jwks_url(url)?;
                if c.iss.is_none() {
                    return Err("an issuer with a jwks_url needs its iss (the exact issuer \
                                string of its tokens)"
                        .into());
                }
                if c.audiences.is_empty() {
                    return Err(
                        "an issuer with a jwks_url needs at least one audience (your \
                                app's client id or API identifier): without one, any app of \
                                the same provider tenant could sign users in"
                            .into(),
                    );
                }
                None
            }
            (None, false) => {
                // An `iss` names a shared signer (a provider's certificate registered as a key):
                // without an audience, its tokens for any other app would pass here.
                if c.iss.is_some() && c.audiences.is_empty() {
                    return Err(
                        "an issuer with an iss needs at least one audience (your app's \
                                client id, or the aud your backend puts in its tokens): without \
                                one, tokens the same signer made for other apps would verify"
                            .into(),
                    );
                }
                if c.keys.len() > keys::MAX_KEYS {
                    return Err(format!("at most {} keys", keys::MAX_KEYS));
                }
                let mut parsed: Vec<PublicKey> = Vec::with_capacity(c.keys.len());
                for jwk in &c.keys {
                    let key = keys::parse_jwk(jwk).map_err(|e| e.0)?;
                    if !c.algorithms.iter().any(|a| key.supports(a)) {
                        return Err(format!(
                            "key {} ({}) can make none of the allowed algorithms {}",
                            key.kid.clone().unwrap_or_else(|| key.thumbprint()),
                            key.kind(),
                            c.algorithms.join(", ")
                        ));
                    }
                    if let Some(kid) = &key.kid
                        && parsed.iter().any(|k| k.kid.as_ref() == Some(kid))
                    {
                        return Err(format!("two keys have the kid {kid:?}"));
                    }
                    parsed.push(key);
                }
                Some(Arc::new(KeySet {
                    keys: parsed,
                    skipped: Vec::new(),
                }))
            }
        };
        let trait_pairs = c.claims.as_ref().map(|map| {
            map.iter()
                .map(|m| (m.claim.clone(), m.to.clone()))
                .collect()
        });
        Ok(Issuer {
            config: c,
            static_keys,
            trait_pairs,
        })
    }
}

impl Issuer {
    fn rules(&self) -> IssuerRules<'_> {
        let c = &self.config;
        IssuerRules {
            issuer: c.iss.as_deref(),
            audiences: &c.audiences,
            user_claim: &c.user_claim,
            traits: self.trait_pairs.as_deref(),
        }
    }

    /// Whether the token's (unverified) `iss` makes it a token of this issuer.
    pub fn claims_token(&self, iss: Option<&str>) -> bool {
        self.config.iss.as_deref() == iss
    }
}

/// The keys of JWKS issuers as the process's cache holds them, read without waiting.
pub trait JwksKeys: Send + Sync {
    /// The keys last fetched from `url`, while they may still be trusted.
    fn get(&self, url: &str) -> Option<Arc<KeySet>>;
}

/// No JWKS cache (the CLI's checks): every JWKS issuer is unavailable.
#[derive(Debug, Clone, Copy)]
pub struct NoJwks;

impl JwksKeys for NoJwks {
    fn get(&self, _url: &str) -> Option<Arc<KeySet>> {
        None
    }
}

/// A workspace's issuers and where their keys are, for one decision.
pub struct WorkspaceIssuers<'a> {
    pub issuers: &'a [Issuer],
    pub jwks: &'a dyn JwksKeys,
}

impl fmt::Debug for WorkspaceIssuers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkspaceIssuers")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

impl WorkspaceIssuers<'_> {
    /// The keys an issuer verifies with now: its static keys, or its JWKS as cached.
    pub fn keys_of(&self, issuer: &Issuer) -> Option<Arc<KeySet>> {
        match (&issuer.static_keys, &issuer.config.jwks_url) {
            (Some(keys), _) => Some(Arc::clone(keys)),
            (None, Some(url)) => self.jwks.get(url),
            (None, None) => None,
        }
    }

    /// Checks a token against one issuer.
    fn verify_with(&self, issuer: &Issuer, jws: &Jws<'_>, now: i64) -> Result<Claims, Rejection> {
        let alg = jws.alg().unwrap_or_default();
        if !issuer.config.algorithms.iter().any(|a| a == alg) {
            return Err(Rejection::AlgorithmNotAllowed);
        }
        let keys = self.keys_of(issuer).ok_or(Rejection::IssuerUnavailable)?;
        let kid = jws.kid();
        if let Some(kid) = kid
            && !keys.has_kid(kid)
        {
            return Err(Rejection::UnknownKeyId);
        }
        let mut candidates = keys.candidates(kid, alg).peekable();
        if candidates.peek().is_none() {
            return Err(Rejection::AlgorithmNotAllowed);
        }
        let msg = jws.signing_input.as_bytes();
        if !candidates.any(|key| verify::verify(key, alg, msg, &jws.signature)) {
            return Err(Rejection::SignatureMismatch);
        }
        check_claims(&issuer.rules(), jws, now)
    }
}

impl TokenIssuers for WorkspaceIssuers<'_> {
    fn verify(&self, token: &str, now: i64) -> Result<(Claims, usize), Rejection> {
        let jws = Jws::parse(token)?;
        // Several issuers may share an `iss` (or have none): the refusal reported is that of
        // the first issuer that holds a key for the token, else the first refusal at all.
        let mut refusal: Option<Rejection> = None;
        for (i, issuer) in self.issuers.iter().enumerate() {
            if !issuer.claims_token(jws.iss()) {
                continue;
            }
            match self.verify_with(issuer, &jws, now) {
                Ok(claims) => return Ok((claims, i)),
                Err(r) => {
                    let vague = |r: Rejection| {
                        matches!(r, Rejection::UnknownKeyId | Rejection::AlgorithmNotAllowed)
                    };
                    if refusal.is_none_or(|known| vague(known) && !vague(r)) {
                        refusal = Some(r);
                    }
                }
            }
        }
        Err(refusal.unwrap_or(Rejection::UnknownIssuer))
    }
}

/// Before deciding on a public-key token of a JWKS issuer: when the cached keys lack its `kid`
/// (or none were fetched yet), fetch them again and wait up to `wait`. The cache allows one
/// such fetch per URL per [`jwks::REFETCH_INTERVAL`], so tokens with random kids cannot make
/// this verifier hammer the provider; a rotation is picked up by the first token that names the
/// new key.
pub async fn refresh_for_token(
    issuers: &[Issuer],
    cache: &jwks::JwksCache,
    token: &str,
    wait: std::time::Duration,
) {
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    for issuer in issuers.iter().filter(|i| i.claims_token(jws.iss())) {
        let Some(url) = &issuer.config.jwks_url else {
            continue;
        };
        let lacking = match cache.get(url) {
            None => true,
            Some(keys) => jws.kid().is_some_and(|kid| !keys.has_kid(kid)),
        };
        if lacking {
            cache.refresh(url, wait).await;
        }
    }
}
