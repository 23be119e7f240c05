//! The identify payload and its validation (the 400 rows of the decision table).
//!
//! Two entry points build the same [`Identify`]: [`Identify::from_wire`] reads the JSON body of
//! `POST /v1/identify` (server), and [`Identify::from_sdk`] reads the arguments of
//! `DropFix.identify(userId, traits)` where `signature`/`hash` and `signedAt` travel inside the
//! traits (browser). Both apply the same rules and produce the same messages, so a bad call fails
//! in the browser exactly as the server would refuse it.
//!
//! Messages are assembled by concatenation rather than `format!`, which keeps the formatting
//! machinery out of the browser's wasm.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::secret::looks_like_secret;
use crate::value::Value;

/// Largest request body the verifier reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest user id, in UTF-8 bytes.
pub const MAX_USER_ID_BYTES: usize = 255;
/// Longest app id, in UTF-8 bytes.
pub const MAX_APP_ID_BYTES: usize = 64;
/// Longest string trait value (standard or custom), in UTF-8 bytes.
pub const MAX_TRAIT_STRING_BYTES: usize = 512;
/// Longest custom trait name, in UTF-8 bytes.
pub const MAX_TRAIT_KEY_BYTES: usize = 64;
/// Most custom (non-standard) traits in one call.
pub const MAX_CUSTOM_TRAITS: usize = 32;
/// Longest `signature`: a signed-claims token is longer than the 64-char seed form, and an
/// identity provider's token (RS512 with a 4096-bit key, groups and custom claims) can pass
/// 4 KB, while a whole call still fits [`MAX_BODY_BYTES`].
pub const MAX_SIGNATURE_BYTES: usize = 8192;
/// Largest MRR accepted; anything above is certainly a unit mistake.
pub const MAX_MRR: f64 = 1e12;

/// A validated identify call.
#[derive(Debug, Clone, PartialEq)]
pub struct Identify {
    pub app_id: String,
    /// The exact string the customer's backend signed; JSON integer ids become decimal strings.
    pub user_id: String,
    pub traits: Traits,
    /// `signature` or its alias `hash`.
    pub signature: Option<String>,
    /// `signed_at` or its alias `signedAt`, in Unix seconds.
    pub signed_at: Option<i64>,
}

/// The traits of an identify call, as claimed by the caller (not yet trusted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traits {
    pub name: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub mrr: Option<f64>,
    pub signup_date: Option<String>,
    /// Any other keys, kept as unverified custom traits. Values are scalars.
    pub custom: Vec<(String, Value)>,
}

/// A field-level validation failure (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Stable machine code, e.g. `invalid_type`.
    pub code: &'static str,
    /// The offending field as a path, e.g. `traits.mrr`; empty for the body as a whole.
    pub field: String,
    /// A sentence naming the field and what to do.
    pub message: String,
}

impl ValidationError {
    fn new(code: &'static str, field: &str, parts: &[&str]) -> Self {
        let mut message = String::new();
        if !field.is_empty() {
            message.push_str(field);
            message.push(' ');
        }
        for part in parts {
            message.push_str(part);
        }
        ValidationError {
            code,
            field: field.to_owned(),
            message,
        }
    }

    /// The whole body is not valid JSON (or not an object); `detail` says why.
    pub fn invalid_json(detail: &str) -> Self {
        Self::new(
            "invalid_json",
            "",
            &["request body is not valid JSON: ", detail],
        )
    }

    fn missing(field: &str) -> Self {
        Self::new("missing_field", field, &["is required"])
    }

    fn wrong_type(field: &str, expected: &str, got: &Value) -> Self {
        Self::new(
            "invalid_type",
            field,
            &["must be ", expected, ", got ", got.kind()],
        )
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Standard trait names, in the order the page lists them.
pub(crate) const STANDARD_TRAITS: [&str; 5] = ["name", "email", "plan", "mrr", "signup_date"];

/// Names only DropFix sets (compared case-insensitively): the verification fields and the other
/// fields of a stored user record, the signature options, and the JWT registered claims. A
/// client-sent trait so named could pass for a verification field downstream, and one named like
/// a registered claim would put a second `sub`, `exp` or `nbf` into a signed-claims token (read
/// as the real one by other JWT consumers), so the payload, signed-claims tokens and the signing
/// helpers refuse it. This is the one list; the docs and every adapter read it from here.
pub const RESERVED_TRAIT_NAMES: [&str; 20] = [
    "verified",
    "verified_at",
    "key_id",
    "method",
    "first_seen",
    "last_seen",
    "unverified_claims",
    "user_id",
    "app_id",
    "signature",
    "hash",
    "signed_at",
    "signedat",
    "sub",
    "iat",
    "exp",
    "nbf",
    "iss",
    "aud",
    "jti",
];

/// Prefixes only DropFix uses (compared case-insensitively): `dropfix_*`, `signature_*` and
/// `verification_*` (also without the underscore, e.g. `signatures`, `verificationStatus`).
pub const RESERVED_TRAIT_PREFIXES: [&str; 3] = ["dropfix", "signature", "verification"];

/// Whether a trait name is reserved ([`RESERVED_TRAIT_NAMES`], [`RESERVED_TRAIT_PREFIXES`]).
///
/// The list is lowercase ASCII, so comparing bytes with ASCII case folding is exactly "lowercase the
/// name, then compare" (non-ASCII bytes never equal an ASCII letter), without allocating a folded
/// copy per trait and without `str` searching, which would bring panic paths and their messages
/// into the browser's wasm (README "Size").
pub fn is_reserved_trait(key: &str) -> bool {
    let k = key.as_bytes();
    RESERVED_TRAIT_NAMES
        .iter()
        .any(|n| k.eq_ignore_ascii_case(n.as_bytes()))
        || RESERVED_TRAIT_PREFIXES.iter().any(|p| {
            k.get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
        })
}

const RESERVED_MESSAGE: &str = "is reserved: only DropFix sets these fields (verified, \
     verified_at, key_id, method, first_seen, last_seen, unverified_claims, user_id, app_id, \
     signature, hash, signed_at, signedAt, the JWT claims sub, iat, exp, nbf, iss, aud, jti, \
     and dropfix*, signature*, verification*, in any case); pass signature and signedAt as \
     identify() options";

/// Whether a trait name contains `secret` in any ASCII case (byte windows rather than lowercasing
/// and `str::contains`, for the same reasons as [`is_reserved_trait`]).
fn is_secret_name(key: &str) -> bool {
    key.as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"secret"))
}

fn secret_error(field: &str) -> ValidationError {
    ValidationError::new(
        "secret_not_allowed",
        field,
        &[
            "looks like a DropFix secret key or claims key: keys must stay on your server; \
             send only the signature they produce",
        ],
    )
}

fn field_path(prefix: &str, key: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + key.len());
    path.push_str(prefix);
    path.push_str(key);
    path
}

fn object<'v>(field: &str, v: &'v Value) -> Result<&'v [(String, Value)], ValidationError> {
    match v {
        Value::Object(entries) => Ok(entries),
        other => Err(ValidationError::wrong_type(field, "an object", other)),
    }
}

/// Whether a trait or claim string holds a control character no field documents: a C0 control
/// (U+0000 to U+001F) other than tab, line feed and carriage return, which free text may hold.
/// NUL in particular cannot be stored in a PostgreSQL text or jsonb value, so it is refused here,
/// identically in the verifier, the browser build and the Node helper, instead of by one backend.
pub(crate) fn has_forbidden_control(s: &str) -> bool {
    s.bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

fn check_string(field: &str, s: &str, max: usize) -> Result<(), ValidationError> {
    if has_forbidden_control(s) {
        return Err(ValidationError::new(
            "invalid_characters",
            field,
            &["must not contain control characters other than tab and line breaks"],
        ));
    }
    if s.len() > max {
        return Err(ValidationError::new(
            "too_long",
            field,
            &["is too long (the limit is ", limit_text(max), " bytes)"],
        ));
    }
    if looks_like_secret(s) {
        return Err(secret_error(field));
    }
    Ok(())
}

/// The limits as text, so messages need no integer formatting.
fn limit_text(max: usize) -> &'static str {
    match max {
        MAX_USER_ID_BYTES => "255",
        MAX_APP_ID_BYTES => "64",
        MAX_TRAIT_STRING_BYTES => "512",
        MAX_SIGNATURE_BYTES => "8192",
        _ => "documented",
    }
}

/// An optional string field: absent and `null` are the same.
fn opt_string(
    field: &str,
    v: Option<&Value>,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => {
            check_string(field, s, max)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(ValidationError::wrong_type(field, "a string", other)),
    }
}

fn identifier(
    field: &str,
    v: Option<&Value>,
    max: usize,
    allow_int: bool,
) -> Result<String, ValidationError> {
    let s = match v {
        None | Some(Value::Null) => return Err(ValidationError::missing(field)),
        Some(Value::Str(s)) => s.clone(),
        // "a JSON number id is its decimal string". Only ids need integer formatting; `itoa`-like
        // code is tiny compared with float formatting, which never happens here.
        Some(Value::Int(i)) if allow_int => int_to_string(*i),
        Some(other) if allow_int => {
            return Err(ValidationError::wrong_type(
                field,
                "a string or an integer (pass large ids as strings)",
                other,
            ));
        }
        Some(other) => return Err(ValidationError::wrong_type(field, "a string", other)),
    };
    if s.is_empty() {
        return Err(ValidationError::new(
            "empty_value",
            field,
            &["must not be empty"],
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "invalid_characters",
            field,
            &["must not contain control characters"],
        ));
    }
    check_string(field, &s, max)?;
    Ok(s)
}

fn int_to_string(i: i64) -> String {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut pos = digits.len();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(21);
    if i < 0 {
        s.push('-');
    }
    for &d in &digits[pos..] {
        s.push(d as char);
    }
    s
}

pub(crate) fn mrr(field: &str, v: Option<&Value>) -> Result<Option<f64>, ValidationError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Int(i)) => *i as f64,
        Some(Value::Float(f)) => *f,
        Some(other) => return Err(ValidationError::wrong_type(field, "a number", other)),
    };
    // NaN and the infinities fall outside the range too.
    if !(0.0..=MAX_MRR).contains(&n) {
        return Err(ValidationError::new(
            "invalid_value",
            field,
            &[
                "must be a finite, non-negative number of at most 1e12 (monthly revenue in your currency)",
            ],
        ));
    }
    Ok(Some(n))
}

fn signed_at(field: &str, v: Option<&Value>) -> Result<Option<i64>, ValidationError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(ValidationError::wrong_type(
            field,
            "an integer number of Unix seconds, e.g. Math.floor(Date.now() / 1000)",
            other,
        )),
    }
}

fn signature(field: &str, v: Option<&Value>) -> Result<Option<String>, ValidationError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => {
            if looks_like_secret(s) {
                return Err(secret_error(field));
            }
            if s.len() > MAX_SIGNATURE_BYTES {
                return Err(ValidationError::new(
                    "too_long",
                    field,
                    &[
                        "is too long (the limit is ",
                        limit_text(MAX_SIGNATURE_BYTES),
                        " bytes)",
                    ],
                ));
            }
            Ok(Some(s.clone()))
        }
        Some(other) => Err(ValidationError::wrong_type(field, "a string", other)),
    }
}

/// Reads a field that has an alias (`signature`/`hash`, `signed_at`/`signedAt`). Both present
/// with different values is ambiguous and refused; both equal is accepted.
fn aliased<'v>(
    entries: &'v [(String, Value)],
    prefix: &str,
    name: &str,
    alias: &str,
) -> Result<(String, Option<&'v Value>), ValidationError> {
    let a = entries.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let b = entries.iter().find(|(k, _)| k == alias).map(|(_, v)| v);
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(ValidationError::new(
            "conflicting_fields",
            &field_path(prefix, name),
            &[
                "and ",
                alias,
                " are both present with different values: send only one",
            ],
        )),
        (Some(x), _) => Ok((field_path(prefix, name), Some(x))),
        (None, y) => Ok((field_path(prefix, alias), y)),
    }
}

/// Checks one custom trait, its name and its value (the payload's rules, also applied to the
/// custom traits of a signed-claims token). `path` names it in messages.
pub(crate) fn check_custom_trait(
    path: &str,
    key: &str,
    value: &Value,
) -> Result<(), ValidationError> {
    if key.is_empty() || key.len() > MAX_TRAIT_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "invalid_trait_name",
            path,
            &["is not a valid trait name (1 to 64 bytes, no control characters)"],
        ));
    }
    if is_secret_name(key) {
        return Err(secret_error(path));
    }
    if is_reserved_trait(key) {
        return Err(ValidationError::new(
            "reserved_trait",
            path,
            &[RESERVED_MESSAGE],
        ));
    }
    match value {
        Value::Null | Value::Bool(_) | Value::Int(_) => {}
        Value::Float(f) if f.is_finite() => {}
        Value::Float(_) => {
            return Err(ValidationError::new(
                "invalid_value",
                path,
                &["must be a finite number"],
            ));
        }
        Value::Str(s) => check_string(path, s, MAX_TRAIT_STRING_BYTES)?,
        other => {
            return Err(ValidationError::wrong_type(
                path,
                "a string, number, boolean or null",
                other,
            ));
        }
    }
    Ok(())
}

impl Traits {
    /// Validates a traits object with the payload's rules (for instance the claims a backend is
    /// about to sign). `prefix` is the path used in messages, e.g. `claims.`.
    pub fn from_value(prefix: &str, v: &Value) -> Result<Traits, ValidationError> {
        Self::parse(prefix, Some(v), &[])
    }

    /// Validates a traits object. `prefix` is the path used in messages (`traits.`);
    /// `skip` lists keys the caller has already consumed (the SDK's signature fields).
    fn parse(prefix: &str, v: Option<&Value>, skip: &[&str]) -> Result<Traits, ValidationError> {
        let field = prefix.trim_end_matches('.');
        let entries = match v {
            None | Some(Value::Null) => return Ok(Traits::default()),
            Some(v) => object(field, v)?,
        };
        let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let mut traits = Traits {
            name: opt_string(
                &field_path(prefix, "name"),
                get("name"),
                MAX_TRAIT_STRING_BYTES,
            )?,
            email: opt_string(
                &field_path(prefix, "email"),
                get("email"),
                MAX_TRAIT_STRING_BYTES,
            )?,
            plan: opt_string(
                &field_path(prefix, "plan"),
                get("plan"),
                MAX_TRAIT_STRING_BYTES,
            )?,
            mrr: mrr(&field_path(prefix, "mrr"), get("mrr"))?,
            signup_date: opt_string(
                &field_path(prefix, "signup_date"),
                get("signup_date"),
                MAX_TRAIT_STRING_BYTES,
            )?,
            custom: Vec::new(),
        };
        for (key, value) in entries {
            if STANDARD_TRAITS.contains(&key.as_str()) || skip.contains(&key.as_str()) {
                continue;
            }
            let path = field_path(prefix, key);
            check_custom_trait(&path, key, value)?;
            if traits.custom.len() == MAX_CUSTOM_TRAITS {
                return Err(ValidationError::new(
                    "too_many_traits",
                    field,
                    &["has too many custom traits (the limit is 32)"],
                ));
            }
            traits.custom.push((key.clone(), value.clone()));
        }
        Ok(traits)
    }

    fn to_value(&self) -> Value {
        let mut entries = Vec::with_capacity(5 + self.custom.len());
        self.push_entries(&mut entries);
        Value::Object(entries)
    }

    /// Appends the traits as JSON object entries: the standard traits that are set, in the page's
    /// order, then the custom ones. The wire body and a signed-claims token write them alike.
    pub(crate) fn push_entries(&self, entries: &mut Vec<(String, Value)>) {
        let strings = [
            ("name", &self.name),
            ("email", &self.email),
            ("plan", &self.plan),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                entries.push((k.to_owned(), Value::Str(v.clone())));
            }
        }
        if let Some(m) = self.mrr {
            entries.push(("mrr".to_owned(), Value::Float(m)));
        }
        if let Some(d) = &self.signup_date {
            entries.push(("signup_date".to_owned(), Value::Str(d.clone())));
        }
        entries.extend(self.custom.iter().cloned());
    }
}

const WIRE_FIELDS: [&str; 7] = [
    "app_id",
    "user_id",
    "traits",
    "signature",
    "hash",
    "signed_at",
    "signedAt",
];

/// Keys of the SDK's traits argument that are options rather than traits.
const SDK_OPTION_KEYS: [&str; 4] = ["signature", "hash", "signedAt", "signed_at"];

impl Identify {
    /// Validates the JSON body of `POST /v1/identify`.
    pub fn from_wire(body: &Value) -> Result<Identify, ValidationError> {
        let entries = match body {
            Value::Object(entries) => entries,
            other => {
                return Err(ValidationError::new(
                    "invalid_json",
                    "",
                    &["request body must be a JSON object, got ", other.kind()],
                ));
            }
        };
        if let Some((key, _)) = entries
            .iter()
            .find(|(k, _)| !WIRE_FIELDS.contains(&k.as_str()))
        {
            return Err(ValidationError::new(
                "unknown_field",
                key,
                &[
                    "is not a field of identify: expected app_id, user_id, traits, \
                     signature (or hash), signed_at (or signedAt)",
                ],
            ));
        }
        let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let app_id = identifier("app_id", get("app_id"), MAX_APP_ID_BYTES, false)?;
        let user_id = identifier("user_id", get("user_id"), MAX_USER_ID_BYTES, true)?;
        let traits = Traits::parse("traits.", get("traits"), &[])?;
        let (sig_field, sig) = aliased(entries, "", "signature", "hash")?;
        let (at_field, at) = aliased(entries, "", "signed_at", "signedAt")?;
        Ok(Identify {
            app_id,
            user_id,
            traits,
            signature: signature(&sig_field, sig)?,
            signed_at: signed_at(&at_field, at)?,
        })
    }

    /// Validates the arguments of `DropFix.identify(userId, traits)` for the app id given to
    /// `DropFix.init`. `signature`/`hash` and `signedAt` are read from the traits object, as in
    /// Step 2 of the page.
    pub fn from_sdk(
        app_id: &str,
        user_id: &Value,
        traits: &Value,
    ) -> Result<Identify, ValidationError> {
        let app_id = identifier(
            "appId",
            Some(&Value::Str(app_id.to_owned())),
            MAX_APP_ID_BYTES,
            false,
        )?;
        let user_id = identifier("userId", Some(user_id), MAX_USER_ID_BYTES, true)?;
        let entries: &[(String, Value)] = match traits {
            Value::Null => &[],
            other => object("traits", other)?,
        };
        let parsed = Traits::parse("traits.", Some(traits), &SDK_OPTION_KEYS)?;
        let (sig_field, sig) = aliased(entries, "traits.", "signature", "hash")?;
        let (at_field, at) = aliased(entries, "traits.", "signedAt", "signed_at")?;
        Ok(Identify {
            app_id,
            user_id,
            traits: parsed,
            signature: signature(&sig_field, sig)?,
            signed_at: signed_at(&at_field, at)?,
        })
    }

    /// The wire body of PROTOCOL.md for this call.
    pub fn to_wire(&self) -> Value {
        let mut entries = alloc::vec![
            ("app_id".to_owned(), Value::Str(self.app_id.clone())),
            ("user_id".to_owned(), Value::Str(self.user_id.clone())),
            ("traits".to_owned(), self.traits.to_value()),
        ];
        if let Some(s) = &self.signature {
            entries.push(("signature".to_owned(), Value::Str(s.clone())));
        }
        if let Some(t) = self.signed_at {
            entries.push(("signed_at".to_owned(), Value::Int(t)));
        }
        Value::Object(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: &str) -> Result<Identify, ValidationError> {
        Identify::from_wire(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn parses_the_protocol_example() {
        let id = wire(
            r#"{ "app_id": "app_1", "user_id": "42",
                 "traits": { "name": "Ada", "email": "ada@example.com", "plan": "pro", "mrr": 49.0,
                             "signup_date": "2024-03-01", "team_size": 5 },
                 "hash": "ab", "signedAt": 1732406400 }"#,
        )
        .unwrap();
        assert_eq!(id.user_id, "42");
        assert_eq!(id.traits.plan.as_deref(), Some("pro"));
        assert_eq!(id.traits.mrr, Some(49.0));
        assert_eq!(id.signature.as_deref(), Some("ab"));
        assert_eq!(id.signed_at, Some(1_732_406_400));
        assert_eq!(id.traits.custom, [("team_size".into(), Value::Int(5))]);
    }

    #[test]
    fn integer_user_id_is_its_decimal_string() {
        assert_eq!(
            wire(r#"{"app_id":"a","user_id":42}"#).unwrap().user_id,
            "42"
        );
        assert_eq!(
            wire(r#"{"app_id":"a","user_id":-9}"#).unwrap().user_id,
            "-9"
        );
        let e = wire(r#"{"app_id":"a","user_id":4.5}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("invalid_type", "user_id"));
    }

    #[test]
    fn control_characters_in_trait_strings_are_refused_but_tab_and_line_breaks() {
        for s in [
            "a\u{0}b", "a\u{1}b", "a\u{b}b", "a\u{c}b", "a\u{1b}b", "a\u{1f}b",
        ] {
            assert!(has_forbidden_control(s), "{s:?}");
        }
        for ok in [
            "a b",
            "a\tb",
            "a\nb",
            "a\r\nb",
            "a\u{7f}b",
            "naïve 日本",
            "",
        ] {
            assert!(!has_forbidden_control(ok), "{ok:?}");
        }
        let e = wire(r#"{"app_id":"a","user_id":"u","traits":{"plan":"pro\u001f"}}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_str()),
            ("invalid_characters", "traits.plan")
        );
        assert!(wire(r#"{"app_id":"a","user_id":"u","traits":{"plan":"pro plus"}}"#).is_ok());
    }

    #[test]
    fn field_level_errors() {
        // The body, or what follows a valid app_id and user_id in it; the code; the field.
        let ids = |rest: &str| alloc::format!(r#"{{"app_id":"a","user_id":"1",{rest}}}"#);
        #[rustfmt::skip]
        let cases = [
            (r#"{"app_id":"a"}"#.into(), "missing_field", "user_id"),
            (r#"{"app_id":"a","user_id":""}"#.into(), "empty_value", "user_id"),
            (r#"{"app_id":"a","user_id":"a\u0000b"}"#.into(), "invalid_characters", "user_id"),
            (r#"{"user_id":"1"}"#.into(), "missing_field", "app_id"),
            (ids(r#""traits":{"mrr":-1}"#), "invalid_value", "traits.mrr"),
            (ids(r#""traits":{"mrr":"49"}"#), "invalid_type", "traits.mrr"),
            (ids(r#""traits":{"plan":3}"#), "invalid_type", "traits.plan"),
            (ids(r#""traits":{"verified":true}"#), "reserved_trait", "traits.verified"),
            (ids(r#""traits":{"dropfix_hash":"x"}"#), "reserved_trait", "traits.dropfix_hash"),
            (ids(r#""traits":{"x":[1]}"#), "invalid_type", "traits.x"),
            (ids(r#""signature":"a","hash":"b""#), "conflicting_fields", "signature"),
            (ids(r#""signed_at":1.5"#), "invalid_type", "signed_at"),
            (ids(r#""signedat":1"#), "unknown_field", "signedat"),
            (ids(r#""signature":"dfsk_abc""#), "secret_not_allowed", "signature"),
            (ids(r#""traits":{"secret_key":"x"}"#), "secret_not_allowed", "traits.secret_key"),
            (r#"[1]"#.into(), "invalid_json", ""),
        ];
        for (json, code, field) in cases {
            let e = wire(&json).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_str()),
                (code, field),
                "{json}: {}",
                e.message
            );
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn too_many_custom_traits() {
        let mut traits = String::from("{");
        for i in 0..=MAX_CUSTOM_TRAITS {
            traits.push_str(&alloc::format!("\"k{i}\":{i},"));
        }
        traits.pop();
        traits.push('}');
        let e = wire(&alloc::format!(
            r#"{{"app_id":"a","user_id":"1","traits":{traits}}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, "too_many_traits");
    }

    #[test]
    fn sdk_arguments_map_to_the_same_call_as_the_wire() {
        let traits: Value = serde_json::from_str(
            r#"{"name":"Ada","plan":"pro","mrr":49,"hash":"ab","signedAt":1732406400,"seats":3}"#,
        )
        .unwrap();
        let id = Identify::from_sdk("app_1", &Value::Int(42), &traits).unwrap();
        let again = Identify::from_wire(&id.to_wire()).unwrap();
        assert_eq!(id, again);
        assert_eq!(id.signature.as_deref(), Some("ab"));
        assert_eq!(id.traits.custom, [("seats".into(), Value::Int(3))]);
    }

    #[test]
    fn int_to_string_edges() {
        for i in [0, 7, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(int_to_string(i), alloc::format!("{i}"));
        }
    }
}

#[cfg(test)]
mod reserved_tests {
    use super::*;
    use alloc::format;

    fn custom(key: &str) -> Result<Identify, ValidationError> {
        let traits = alloc::vec![(key.into(), Value::Int(1))];
        let body = Value::Object(alloc::vec![
            ("app_id".into(), Value::Str("a".into())),
            ("user_id".into(), Value::Str("1".into())),
            ("traits".into(), Value::Object(traits)),
        ]);
        Identify::from_wire(&body)
    }

    /// Issue 15 item 7: `verified_at`, `key_id`, `method`, `first_seen` were accepted as custom
    /// traits while `Verified` was refused. Every name and prefix of the one list is refused in
    /// any case, on the wire and in the SDK's arguments, and the message names the whole list.
    #[test]
    fn every_reserved_name_is_refused_in_any_case() {
        let mut names: Vec<String> = RESERVED_TRAIT_NAMES.iter().map(|n| (*n).into()).collect();
        for p in RESERVED_TRAIT_PREFIXES {
            names.push(p.into());
            names.push(format!("{p}_x"));
            names.push(format!("{p}Status"));
        }
        for name in names {
            for key in [name.clone(), name.to_ascii_uppercase(), {
                let mut c = name.clone();
                c[..1].make_ascii_uppercase();
                c
            }] {
                let e = custom(&key).unwrap_err();
                assert_eq!(e.code, "reserved_trait", "{key}");
                assert_eq!(e.field, format!("traits.{key}"));
                assert!(is_reserved_trait(&key), "{key}");
                let sdk = Identify::from_sdk(
                    "a",
                    &Value::Int(1),
                    &Value::Object(alloc::vec![(key.clone(), Value::Bool(true))]),
                );
                // The SDK consumes its option keys (signature, hash, signedAt, signed_at) first.
                if !SDK_OPTION_KEYS.contains(&key.as_str()) {
                    assert_eq!(sdk.unwrap_err().code, "reserved_trait", "sdk {key}");
                }
            }
        }
        let message = custom("verified").unwrap_err().message;
        for name in RESERVED_TRAIT_NAMES {
            let shown = if name == "signedat" { "signedAt" } else { name };
            assert!(message.contains(shown), "{name} not in {message}");
        }
        for p in RESERVED_TRAIT_PREFIXES {
            assert!(message.contains(&format!("{p}*")), "{p} not in {message}");
        }
    }

    #[test]
    fn ordinary_names_are_not_reserved() {
        for key in [
            "team_size",
            "plan_tier",
            "verify",
            "hashtag",
            "my_dropfix",
            "signup",
            "methods",
            "key",
            "user",
            "ids",
        ] {
            assert!(!is_reserved_trait(key), "{key}");
            assert_eq!(
                custom(key).unwrap().traits.custom,
                [(key.into(), Value::Int(1))]
            );
        }
    }
}
