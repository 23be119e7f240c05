//! Custom trait names are matched against the secret and reserved rules with ASCII case folding:
//! "lowercase the name's ASCII letters, then compare". The core does this on bytes (no folded copy,
//! no `str` search, which kept panic paths and Unicode tables in the browser's wasm); these tests
//! hold it to that rule, written here the plain way, for names mixing the listed words in any case
//! with non-ASCII letters whose Unicode lowercase is ASCII (`K` Kelvin sign, `İ`), which ASCII
//! folding must leave alone.

use dropfix_core::{
    Identify, RESERVED_TRAIT_NAMES, RESERVED_TRAIT_PREFIXES, Value, is_reserved_trait,
};
use proptest::prelude::*;

/// The rule as written: ASCII-lowercased name equal to a listed name or starting with a prefix.
fn reserved_by_the_rule(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    RESERVED_TRAIT_NAMES.contains(&k.as_str())
        || RESERVED_TRAIT_PREFIXES.iter().any(|p| k.starts_with(p))
}

/// The code a custom trait named `key` (value 1) gets from the verifier, or `None` if accepted.
fn code_of(key: &str) -> Option<&'static str> {
    let body = Value::Object(vec![
        ("app_id".into(), Value::Str("a".into())),
        ("user_id".into(), Value::Str("1".into())),
        (
            "traits".into(),
            Value::Object(vec![(key.into(), Value::Int(1))]),
        ),
    ]);
    Identify::from_wire(&body).err().map(|e| e.code)
}

fn expected_code(key: &str) -> Option<&'static str> {
    if key.to_ascii_lowercase().contains("secret") {
        Some("secret_not_allowed")
    } else if reserved_by_the_rule(key) {
        Some("reserved_trait")
    } else {
        None
    }
}

fn fragment() -> impl Strategy<Value = String> {
    let words: Vec<String> = RESERVED_TRAIT_NAMES
        .iter()
        .chain(RESERVED_TRAIT_PREFIXES.iter())
        .chain(
            [
                "secret", "secre", "ecret", "s", "_", "x", "K", "\u{212a}", "İ", "é", "ſ",
            ]
            .iter(),
        )
        .map(|w| (*w).to_owned())
        .collect();
    (proptest::sample::select(words), any::<u64>()).prop_map(|(w, case)| {
        // Flip the case of ASCII letters by the bits of `case`.
        w.chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn names_are_matched_with_ascii_case_folding(parts in proptest::collection::vec(fragment(), 1..4)) {
        let key = parts.concat();
        prop_assume!(key.len() <= 64 && !["name", "email", "plan", "mrr", "signup_date"].contains(&key.as_str()));
        prop_assert_eq!(is_reserved_trait(&key), reserved_by_the_rule(&key), "{}", key);
        prop_assert_eq!(code_of(&key), expected_code(&key), "{}", key);
    }

    #[test]
    fn arbitrary_names_are_matched_with_ascii_case_folding(key in "\\PC{1,16}") {
        prop_assume!(!["name", "email", "plan", "mrr", "signup_date"].contains(&key.as_str()));
        prop_assert_eq!(is_reserved_trait(&key), reserved_by_the_rule(&key), "{}", key);
        prop_assert_eq!(code_of(&key), expected_code(&key), "{}", key);
    }
}

#[test]
fn edges_of_the_byte_matching() {
    // `secret` anywhere, in any ASCII case, at the start, the end, or as the whole name.
    for key in [
        "secret",
        "SECRET",
        "xSeCrEt",
        "SecretKey",
        "my_secret_",
        "aaaaaSECRET",
    ] {
        assert_eq!(code_of(key), Some("secret_not_allowed"), "{key}");
    }
    // Five of its six letters, or a non-ASCII look-alike, is not `secret`.
    for key in ["secre", "ecret", "s_ecret", "ſecret", "secrét"] {
        assert_eq!(code_of(key), None, "{key}");
    }
    // A listed name must match whole; a prefix only at the start; shorter than a prefix is fine.
    for key in [
        "VERIFIED",
        "Signed_At",
        "signedAt",
        "DropFix",
        "SIGNATURES",
        "verificationX",
    ] {
        assert!(is_reserved_trait(key), "{key}");
        assert_eq!(code_of(key), Some("reserved_trait"), "{key}");
    }
    for key in [
        "verifie",
        "verifiedx",
        "xverified",
        "dropfi",
        "signatur",
        "verificatio",
        "x_dropfix",
        "Hash_",
        "\u{212a}ey_id",
        "İ",
        "",
    ] {
        assert!(!is_reserved_trait(key), "{key}");
    }
}
