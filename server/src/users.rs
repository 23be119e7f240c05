//! Stored users as plain types, and the stored-data rules of an accepted identify call as one
//! pure function ([`merge`]). Both backends state the same rules in their upsert statements
//! (one shared conflict clause, `store::merge_on_conflict`), and the behaviour suite
//! (`server/tests/store_behaviour.rs`) holds both to the same outcomes.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value as Json};

/// What an accepted (200 or 202) identify call writes. Storing the same write twice in a row
/// leaves what storing it once left ([`merge`] of a record with the write it came from changes
/// nothing), so a batch may store a user's repeated identical call once.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyWrite {
    pub app_id: String,
    pub user_id: String,
    /// Server clock, Unix seconds.
    pub now: i64,
    /// Set when the call verified.
    pub verification: Option<Verification>,
    /// Values the verification vouches for (empty for unverified calls).
    pub trusted: Claimed,
    /// What the browser sent.
    pub claimed: Claimed,
    /// The custom traits this call stores as the user's set: as sent for an unverified or a
    /// seed-form call, the token's for a signed-claims call. Empty: the stored set stays.
    pub custom: Map<String, Json>,
    /// A signed-claims call's custom traits that its token does not cover: what the browser
    /// added beside a valid token is kept aside in `unverified_claims`, never in `custom`.
    pub claimed_custom: Map<String, Json>,
}

/// Whether a JSON value holds a NUL character anywhere (keys included).
pub fn json_has_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(a) => a.iter().any(json_has_nul),
        Json::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

impl Claimed {
    fn nul_field(&self) -> Option<&'static str> {
        [
            ("name", &self.name),
            ("email", &self.email),
            ("plan", &self.plan),
            ("signup_date", &self.signup_date),
        ]
        .into_iter()
        .find(|(_, v)| v.as_deref().is_some_and(|s| s.contains('\0')))
        .map(|(name, _)| name)
    }
}

impl IdentifyWrite {
    /// The first field holding a NUL character, which no backend stores (PostgreSQL refuses it
    /// in text and jsonb): `None` when the write can be stored everywhere.
    pub fn nul_field(&self) -> Option<String> {
        if self.app_id.contains('\0') {
            return Some("app_id".into());
        }
        if self.user_id.contains('\0') {
            return Some("user_id".into());
        }
        if let Some(f) = self.trusted.nul_field().or(self.claimed.nul_field()) {
            return Some(format!("traits.{f}"));
        }
        self.custom
            .iter()
            .chain(&self.claimed_custom)
            .find(|(k, v)| k.contains('\0') || json_has_nul(v))
            .map(|(k, _)| format!("traits.{}", k.replace('\0', "\\0")))
    }

    /// The claims object this write offers for `unverified_claims`, as [`merge`] builds it: on a
    /// verified call what the browser claimed beyond what the signature covers, otherwise all it
    /// claimed; `None` when that is nothing. Backends whose statement states the merge in SQL
    /// bind this, so the stored JSON is byte for byte what `merge` makes.
    pub fn claims_json(&self) -> Option<String> {
        self.unverified_claims().map(|j| j.to_string())
    }

    /// See [`IdentifyWrite::claims_json`]. Custom traits claimed without a signature (all of an
    /// unverified call's, those a token does not cover) are among the claims, under `custom`.
    fn unverified_claims(&self) -> Option<Json> {
        let (claims, custom) = match self.verification {
            Some(_) => (
                self.claimed.not_covered_by(&self.trusted),
                &self.claimed_custom,
            ),
            None => (self.claimed.clone(), &self.custom),
        };
        let mut json = claims.to_claims_json(self.now);
        if !custom.is_empty() {
            let claims = json.get_or_insert_with(|| serde_json::json!({ "at": self.now }));
            if let Json::Object(m) = claims {
                m.insert("custom".into(), Json::Object(custom.clone()));
            }
        }
        json
    }

    /// The custom traits as stored JSON, `None` when the call sent none (the stored ones stay).
    pub fn custom_json(&self) -> Option<String> {
        (!self.custom.is_empty()).then(|| serde_json::to_string(&self.custom).unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub method: &'static str,
    pub key_id: i64,
    pub signed_at: i64,
}

/// The protected traits, plus signup date.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Claimed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_mrr"
    )]
    pub mrr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signup_date: Option<String>,
}

impl Claimed {
    pub fn is_empty(&self) -> bool {
        *self == Claimed::default()
    }

    /// `self` with `newer`'s present values laid over it.
    pub fn overlay(mut self, newer: &Claimed) -> Claimed {
        macro_rules! take {
            ($($f:ident),*) => {$( if newer.$f.is_some() { self.$f = newer.$f.clone(); } )*};
        }
        take!(name, email, plan, mrr, signup_date);
        self
    }

    /// The values of `self` that `trusted` does not cover (what stays an unverified claim).
    pub fn not_covered_by(&self, trusted: &Claimed) -> Claimed {
        macro_rules! keep {
            ($($f:ident),*) => { Claimed { $( $f: if trusted.$f.is_none() { self.$f.clone() } else { None }, )* } };
        }
        keep!(name, email, plan, mrr, signup_date)
    }

    /// The unverified-claims object: these values plus when they were claimed.
    pub fn to_claims_json(&self, at: i64) -> Option<Json> {
        if self.is_empty() {
            return None;
        }
        let mut v = serde_json::to_value(self).unwrap_or(Json::Null);
        if let Json::Object(m) = &mut v {
            m.insert("at".into(), at.into());
        }
        Some(v)
    }
}

/// MRR is stored as a double; a whole amount goes back out as an integer (`5000`, not
/// `5000.0`), so what a customer sent as an integer reads back as one.
fn serialize_mrr<S: Serializer>(mrr: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match mrr {
        Some(v) => mrr_json(*v).serialize(s),
        None => s.serialize_none(),
    }
}

/// The JSON number for an MRR value: an integer when it is whole and exactly representable.
pub fn mrr_json(v: f64) -> Json {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() < EXACT {
        Json::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
    }
}

/// A stored user, as the admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    pub user_id: String,
    pub verified: bool,
    pub method: Option<String>,
    pub verified_at: Option<i64>,
    pub signed_at: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    #[serde(serialize_with = "serialize_mrr")]
    pub mrr: Option<f64>,
    pub signup_date: Option<String>,
    pub custom: Json,
    pub unverified_claims: Option<Json>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Which key verified it (to tell when a rolled-out key is still in use).
    pub key_id: Option<i64>,
}

impl UserRecord {
    /// The user's traits split by what they are worth: the values a signature vouched for, and
    /// what browsers only claimed. A verified user's columns hold trusted values and its later
    /// claims sit in `unverified_claims` (say, the name and email a signed-claims token did not
    /// cover); a never-verified user's columns hold only claims.
    pub fn trusted_and_claimed(&self) -> (Claimed, Claimed) {
        if !self.verified {
            return (Claimed::default(), self.values());
        }
        let aside = self.unverified_claims.as_ref();
        let text = |k: &str| {
            aside
                .and_then(|c| c.get(k))
                .and_then(Json::as_str)
                .map(str::to_owned)
        };
        let claimed = Claimed {
            name: text("name"),
            email: text("email"),
            plan: text("plan"),
            mrr: aside.and_then(|c| c.get("mrr")).and_then(Json::as_f64),
            signup_date: text("signup_date"),
        };
        (self.values(), claimed)
    }

    pub fn values(&self) -> Claimed {
        Claimed {
            name: self.name.clone(),
            email: self.email.clone(),
            plan: self.plan.clone(),
            mrr: self.mrr,
            signup_date: self.signup_date.clone(),
        }
    }
}

/// Which users a listing returns.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only users with this verification state (`Some(false)`: unverified only).
    pub verified: Option<bool>,
    /// Ids that contain this text.
    pub search: Option<String>,
    /// Keyset cursor: ids after this one, in id order.
    pub after: Option<String>,
    pub limit: usize,
}

/// How close in time (seconds) two calls that change nothing else are recorded as one: a call
/// that would leave every stored value as it is and move `last_seen`, `verified_at` and
/// `signed_at` each by less than this (either way) leaves the record untouched. An active user's
/// browser calls identify on every page it loads, with the same traits; recording those times to
/// the minute is what churn analytics needs, and a repeat call then costs no write.
pub const SEEN_RESOLUTION: i64 = 60;

/// Applies one accepted identify call to what is stored, under the stored-data rules:
/// - a verified call sets the trusted values (and how and when it was verified); only values
///   a verification vouched for are trusted: a never-verified user's earlier claims are not
///   promoted by a later verification;
/// - an unverified call never overwrites the trusted values of a verified user nor makes it
///   unverified: what it claimed is kept aside in `unverified_claims`;
/// - an unverified call for a never-verified user records what it claims.
///
/// Custom traits ([`IdentifyWrite::custom`]): a call that sends some replaces the set, a call
/// that sends none keeps it; except that an unverified call never replaces a verified user's
/// set (a signed-claims token may have vouched for it): its custom traits are kept aside in
/// `unverified_claims` with its other claims; and a verification reaching a user not verified
/// yet replaces the set even with none (a browser's earlier claims are not promoted).
///
/// A call that changes nothing but the times, each by less than [`SEEN_RESOLUTION`], leaves the
/// stored record as it is.
pub fn merge(existing: Option<&UserRecord>, w: &IdentifyWrite) -> UserRecord {
    let merged = merge_values(existing, w);
    match existing {
        Some(u) if same_to_the_minute(u, &merged) => u.clone(),
        _ => merged,
    }
}

/// Whether `new` differs from `stored` only in its times, each moved by less than
/// [`SEEN_RESOLUTION`] (a time set or cleared counts as moved).
fn same_to_the_minute(stored: &UserRecord, new: &UserRecord) -> bool {
    let near = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) < SEEN_RESOLUTION.unsigned_abs(),
        (a, b) => a == b,
    };
    let times_near = near(Some(stored.last_seen), Some(new.last_seen))
        && near(stored.verified_at, new.verified_at)
        && near(stored.signed_at, new.signed_at);
    times_near
        && *stored
            == UserRecord {
                last_seen: stored.last_seen,
                verified_at: stored.verified_at,
                signed_at: stored.signed_at,
                ..new.clone()
            }
}

fn merge_values(existing: Option<&UserRecord>, w: &IdentifyWrite) -> UserRecord {
    let was_verified = existing.is_some_and(|u| u.verified);
    let stored = existing.map(UserRecord::values).unwrap_or_default();
    // A verification that reaches a user not verified yet starts its set afresh (as for the
    // other traits, earlier claims are not promoted); after that, as described above.
    let promotes = w.verification.is_some() && !was_verified;
    let keeps_custom =
        !promotes && (w.custom.is_empty() || (was_verified && w.verification.is_none()));
    let custom = if keeps_custom {
        existing.map_or_else(|| Json::Object(Map::new()), |u| u.custom.clone())
    } else {
        Json::Object(w.custom.clone())
    };
    let first_seen = existing.map_or(w.now, |u| u.first_seen);
    let (verified, method, key_id, verified_at, signed_at, values, unverified_claims) =
        match (&w.verification, existing) {
            (Some(v), _) => {
                let base = if was_verified {
                    stored
                } else {
                    Claimed::default()
                };
                (
                    true,
                    Some(v.method.to_string()),
                    Some(v.key_id),
                    Some(w.now),
                    Some(v.signed_at),
                    base.overlay(&w.trusted),
                    w.unverified_claims(),
                )
            }
            (None, Some(u)) if u.verified => (
                true,
                u.method.clone(),
                u.key_id,
                u.verified_at,
                u.signed_at,
                stored,
                w.unverified_claims()
                    .or_else(|| u.unverified_claims.clone()),
            ),
            (None, _) => (
                false,
                None,
                None,
                None,
                None,
                stored.overlay(&w.claimed),
                None,
            ),
        };
    UserRecord {
        user_id: w.user_id.clone(),
        verified,
        method,
        verified_at,
        signed_at,
        name: values.name,
        email: values.email,
        plan: values.plan,
        mrr: values.mrr,
        signup_date: values.signup_date,
        custom,
        unverified_claims,
        first_seen,
        last_seen: w.now,
        key_id,
    }
}

/// Folds several writes for the same user (one commit batch) into the record the last of them
/// leaves, applying [`merge`] in arrival order, so a batch stores exactly what the calls one by
/// one would have.
pub fn merge_all<'a>(
    existing: Option<UserRecord>,
    writes: impl IntoIterator<Item = &'a IdentifyWrite>,
) -> Option<UserRecord> {
    writes
        .into_iter()
        .fold(existing, |acc, w| Some(merge(acc.as_ref(), w)))
}

/// The standard traits, stored in their own columns; any other name is a custom trait.
const STANDARD_TRAITS: [&str; 5] = ["name", "email", "plan", "mrr", "signup_date"];

/// The standard trait that a custom trait's name most likely misspells (`emial`, `signupDate`,
/// `Plan`, `e-mail`), or `None`. Such a trait is stored as custom and the standard column stays
/// empty, silently; the verifier's `explain` answer and the SDK's debug mode say so. A match is the
/// same letters ignoring ASCII case, `_` and `-`, or one slip away: two neighbouring letters
/// swapped, or (for names of five letters or more, where one letter is not a different word) one
/// letter missing, extra or wrong.
pub fn misspelled_standard_trait(name: &str) -> Option<&'static str> {
    let fold = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|b| !matches!(b, b'_' | b'-'))
            .map(|b| b.to_ascii_lowercase())
            .collect()
    };
    let got = fold(name);
    STANDARD_TRAITS.into_iter().find(|standard| {
        let want = fold(standard);
        got == want || swapped_once(&got, &want) || (want.len() >= 5 && one_edit(&got, &want))
    })
}

/// Whether `a` is `b` with two neighbouring (different) bytes swapped.
fn swapped_once(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    matches!(diff[..], [i, j] if j == i + 1 && a[i] == b[j] && a[j] == b[i])
}

/// Whether `a` and `b` differ by exactly one inserted, deleted or replaced byte.
fn one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => (0..a.len()).filter(|&i| a[i] != b[i]).count() == 1,
        1 => {
            let i = (0..short.len())
                .find(|&i| short[i] != long[i])
                .unwrap_or(short.len());
            short[i..] == long[i + 1..]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelled_standard_traits_are_recognised_and_other_names_are_not() {
        for (name, standard) in [
            ("emial", "email"),
            ("Email", "email"),
            ("e-mail", "email"),
            ("e_mail", "email"),
            ("emal", "email"),
            ("emaill", "email"),
            ("enail", "email"),
            ("signupDate", "signup_date"),
            ("SignupDate", "signup_date"),
            ("signup-date", "signup_date"),
            ("signupdate", "signup_date"),
            ("singup_date", "signup_date"),
            ("signup_dat", "signup_date"),
            ("Plan", "plan"),
            ("PLAN", "plan"),
            ("paln", "plan"),
            ("Name", "name"),
            ("nmae", "name"),
            ("MRR", "mrr"),
            ("rmr", "mrr"),
            ("emails", "email"),
            ("mail", "email"),
        ] {
            assert_eq!(misspelled_standard_trait(name), Some(standard), "{name}");
        }
        // Other words, however close for short names: a slip is only a swap there.
        for name in [
            "names",
            "nam",
            "game",
            "plans",
            "plant",
            "pan",
            "mr",
            "mrrr",
            "mmr",
            "arr",
            "team",
            "e",
            "",
            "signup",
            "signup_at",
            "plna ",
            "ünïcødé",
            "mail_count",
        ] {
            assert_eq!(misspelled_standard_trait(name), None, "{name}");
        }
    }

    #[test]
    fn the_edit_helpers_count_exactly_one_slip() {
        assert!(swapped_once(b"ab", b"ba"));
        assert!(!swapped_once(b"ab", b"ab"));
        assert!(!swapped_once(b"abc", b"cba"));
        assert!(!swapped_once(b"abcd", b"badc"));
        assert!(!swapped_once(b"ab", b"abc"));
        assert!(one_edit(b"abc", b"abd"));
        assert!(one_edit(b"abc", b"ab"));
        assert!(one_edit(b"ab", b"abc"));
        assert!(one_edit(b"abc", b"xabc"));
        assert!(!one_edit(b"abc", b"abc"));
        assert!(!one_edit(b"abc", b"axd"));
        assert!(!one_edit(b"abc", b"a"));
        assert!(!one_edit(b"abcd", b"xabd"));
    }

    #[test]
    fn whole_mrr_reads_back_as_an_integer() {
        assert_eq!(mrr_json(5000.0).to_string(), "5000");
        assert_eq!(mrr_json(49.5).to_string(), "49.5");
        assert_eq!(mrr_json(0.0).to_string(), "0");
        assert_eq!(mrr_json(1e300).to_string(), "1e+300");
        let c = Claimed {
            mrr: Some(5000.0),
            ..Claimed::default()
        };
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"mrr":5000}"#);
    }
}
