//! Shared helpers for the cross-crate and cross-language tests: the vector file, running the
//! other languages' programs, and the core's decision on what they produced.

use std::path::{Path, PathBuf};
use std::process::Command;

use dropfix_core::{
    Decision, Identify, NO_ISSUERS, Policy, SecretKey, StrictMode, TokenIssuers, Value,
};
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

/// Runs `program args...` with extra environment variables and returns its stdout, panicking
/// with stderr when it fails. A missing interpreter is a failure, not a skip: `scripts/test.sh`
/// installs Node, Python and Ruby, and a skipped cross-language test proves nothing.
///
/// `python3` means the Python that has the test's packages: see [`python`].
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let program = if program == "python3" {
        python()
    } else {
        program.to_owned()
    };
    let program = program.as_str();
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(tests_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("could not start `{program}` ({e}); run scripts/test.sh, which installs it")
    });
    assert!(
        out.status.success(),
        "`{program} {args:?}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The Python interpreter for the Python programs: `DROPFIX_PYTHON` when set (scripts/test.sh
/// sets it to `.venv/bin/python`, where scripts/setup.sh installs PyJWT, so that nothing is
/// installed into the system Python), else `python3` from `PATH`.
pub fn python() -> String {
    std::env::var("DROPFIX_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// The current Unix time, for tests that verify what a real program just signed.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The core's decision, now, on one identify call in wire form (`body`) to a workspace with the
/// one secret `secret` and strict mode on; `require_signed_claims` as the workspace sets it.
pub fn decide_enforced(body: Json, secret: &str, require_signed_claims: bool) -> Decision {
    decide_with_issuers(body, Some(secret), require_signed_claims, NO_ISSUERS)
}

/// [`decide_enforced`] for a workspace that trusts the token issuers `issuers` and holds the
/// secret `secret`, or none (a workspace created with `--no-secret-key`).
pub fn decide_with_issuers(
    body: Json,
    secret: Option<&str>,
    require_signed_claims: bool,
    issuers: &dyn TokenIssuers,
) -> Decision {
    let body: Value = serde_json::from_value(body).unwrap();
    let call = Identify::from_wire(&body).unwrap();
    let secrets: Vec<SecretKey> = secret.into_iter().map(SecretKey::new).collect();
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::Enforce,
        require_signed_claims,
        issuers,
    };
    dropfix_core::decide(&policy, &call, now())
}
