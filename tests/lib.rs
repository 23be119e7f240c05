//! Shared helpers for the cross-crate and cross-language tests: the vector file and running the
//! other languages' programs.

use std::path::{Path, PathBuf};
use std::process::Command;

use dropfix_core::{Decision, Identify, Policy, SecretKey, StrictMode, Value};
use serde_json::Value as Json;

/// The one vector file, embedded at compile time.
pub const VECTORS: &str = include_str!("vectors/seed.json");

/// The parsed vector file.
pub fn vectors() -> Json {
    serde_json::from_str(VECTORS).expect("tests/vectors/seed.json is valid JSON")
}

/// This crate's directory (`tests/`).
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs a decision case of the vector file through the core and describes the outcome in the
/// vector file's terms (`{"outcome", "code"?, "field"?, "method"?, ...}`).
pub fn run_decision_case(case: &Json) -> Json {
    let body: Value = serde_json::from_value(case["request"].clone()).expect("request parses");
    let call = match Identify::from_wire(&body) {
        Ok(call) => call,
        Err(e) => {
            return serde_json::json!({"outcome": "invalid", "code": e.code, "field": e.field});
        }
    };
    let secrets: Vec<SecretKey> = case["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SecretKey::new(s.as_str().unwrap()))
        .collect();
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::parse(case["strict"].as_str().unwrap()).unwrap(),
        require_signed_claims: case["require_signed_claims"].as_bool().unwrap(),
    };
    decision_json(&dropfix_core::decide(&policy, &call, case["now"].as_i64().unwrap()))
}

/// A decision in the vector file's terms.
pub fn decision_json(decision: &Decision) -> Json {
    match decision {
        Decision::Verified(v) => {
            let mut trusted = serde_json::Map::new();
            let t = &v.trusted;
            for (k, val) in [("name", &t.name), ("email", &t.email), ("plan", &t.plan)] {
                if let Some(val) = val {
                    trusted.insert(k.into(), val.clone().into());
                }
            }
            if let Some(mrr) = t.mrr {
                trusted.insert("mrr".into(), mrr.into());
            }
            serde_json::json!({"outcome": "verified", "method": v.method.as_str(),
                               "key_index": v.key_index, "trusted": trusted})
        }
        Decision::Unverified { would_reject: None } => serde_json::json!({"outcome": "unverified"}),
        Decision::Unverified {
            would_reject: Some(r),
        } => serde_json::json!({"outcome": "unverified", "would_reject": r.code()}),
        Decision::Rejected(r) => serde_json::json!({"outcome": "rejected", "code": r.code()}),
    }
}

/// Runs `program args...` with extra environment variables and returns its stdout, panicking
/// with stderr when it fails. A missing interpreter is a failure, not a skip: `scripts/test.sh`
/// installs Node, Python and Ruby, and a skipped cross-language test proves nothing.
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(tests_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start `{program}` ({e}); run scripts/test.sh, which installs it"));
    assert!(
        out.status.success(),
        "`{program} {args:?}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The current Unix time, for tests that verify what a real program just signed.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
