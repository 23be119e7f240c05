//! `debug-signature`: which check a signature fails and what to fix, from [`crate::diagnose`];
//! the exit code says whether the verifier would accept the call. Needs no store.

use std::process::ExitCode;

use clap::Args;
use dropfix_core::SecretKey;

use crate::{diagnose, web::now};

#[derive(Debug, Args)]
pub(super) struct DebugArgs {
    /// The workspace secret key.
    #[arg(long, env = "DROPFIX_SECRET_KEY", hide_env_values = true)]
    secret: String,
    /// The user id passed to identify().
    #[arg(long)]
    user_id: String,
    /// The signature (or signed-claims token) passed to identify().
    #[arg(long)]
    signature: String,
    /// The signedAt passed to identify().
    #[arg(long)]
    signed_at: Option<i64>,
    /// Check against this time instead of now (Unix seconds), e.g. when the call was made.
    #[arg(long)]
    now: Option<i64>,
    /// The user's email, to test whether the backend signed it instead of the id.
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    json: bool,
}

pub(super) fn debug_signature(args: DebugArgs) -> ExitCode {
    let report = diagnose::diagnose(&diagnose::Input {
        secret: SecretKey::new(args.secret),
        user_id: args.user_id,
        signature: args.signature,
        signed_at: args.signed_at,
        now: args.now.unwrap_or_else(now),
        email: args.email,
    });
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for f in &report.findings {
            println!(
                "{} {:<9} {}",
                if f.ok { "ok  " } else { "FAIL" },
                f.check,
                f.detail
            );
        }
        match (&report.code, &report.fix) {
            (None, _) => println!("\nthe verifier would accept this call (200, verified)"),
            (Some(code), fix) => {
                println!("\nthe verifier would answer 401 {code}");
                if let Some(fix) = fix {
                    println!("fix: {fix}");
                }
            }
        }
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
