//! `debug-signature`: which check a signature fails and what to fix, from [`crate::diagnose`];
//! the exit code says whether the verifier would accept the call. Needs no store, except for a
//! public-key token, which is checked against the token issuers of the workspace `--app-id`
//! names (read from the store; a JWKS issuer's keys are fetched once, under the serve rules).

use std::process::ExitCode;

use clap::Args;
use dropfix_core::SecretKey;

use super::data_dir::{DataDir, with_store_value};
use crate::issuers::JwksKeys;
use crate::issuers::fetch::{FetchOptions, Fetcher};
use crate::issuers::keys::KeySet;
use crate::{diagnose, web::now};

#[derive(Debug, Args)]
pub(super) struct DebugArgs {
    /// The workspace secret key (for the seed form and HS256 signed claims).
    #[arg(long, env = "DROPFIX_SECRET_KEY", hide_env_values = true)]
    secret: Option<String>,
    /// For a public-key token: the workspace whose token issuers to check it against.
    #[arg(long)]
    app_id: Option<String>,
    #[command(flatten)]
    data: DataDir,
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

/// JWKS fetched once by this command, by URL.
#[derive(Debug, Default)]
struct FetchedKeys(std::collections::HashMap<String, std::sync::Arc<KeySet>>);

impl JwksKeys for FetchedKeys {
    fn get(&self, url: &str) -> Option<std::sync::Arc<KeySet>> {
        self.0.get(url).cloned()
    }
}

pub(super) fn debug_signature(args: DebugArgs) -> ExitCode {
    let now = args.now.unwrap_or_else(now);
    let report = if dropfix_core::issuer::is_issuer_token(args.signature.trim()) {
        let Some(app_id) = args.app_id.clone() else {
            eprintln!(
                "dropfix-server: this is a public-key token: it is checked against a \
                 workspace's token issuers; pass --app-id (and the store's --data-dir or \
                 --database-url)"
            );
            return ExitCode::from(2);
        };
        let token = args.signature.trim().to_owned();
        let user_id = args.user_id.clone();
        let result = with_store_value(&args.data, |store| async move {
            let ws = store
                .workspaces()
                .await?
                .into_iter()
                .find(|w| w.app_id == app_id)
                .ok_or("no workspace has this app id")?;
            // A JWKS issuer's keys: fetched once now, under the verifier's rules (https, public
            // addresses only, bounded size and time).
            let mut fetched = FetchedKeys::default();
            let fetcher = Fetcher::new(FetchOptions::default());
            for url in ws
                .issuers
                .iter()
                .filter_map(|i| i.config.jwks_url.as_deref())
            {
                match fetcher.get(url).await {
                    Ok(got) => match crate::issuers::keys::parse_jwks(&got.body) {
                        Ok(set) => {
                            fetched.0.insert(url.to_owned(), std::sync::Arc::new(set));
                        }
                        Err(e) => eprintln!("{url}: {e}"),
                    },
                    Err(e) => eprintln!("{url}: {e}"),
                }
            }
            let issuers = crate::issuers::WorkspaceIssuers {
                issuers: &ws.issuers,
                jwks: &fetched,
            };
            Ok(diagnose::diagnose_issuer_token(
                &issuers, &user_id, &token, now,
            ))
        });
        match result {
            Ok(report) => report,
            Err(e) => {
                eprintln!("dropfix-server: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let Some(secret) = args.secret.clone() else {
            eprintln!(
                "dropfix-server: --secret (or DROPFIX_SECRET_KEY) is needed to check a seed-form \
                 signature or an HS256 token"
            );
            return ExitCode::from(2);
        };
        diagnose::diagnose(&diagnose::Input {
            secret: SecretKey::new(secret),
            user_id: args.user_id,
            signature: args.signature,
            signed_at: args.signed_at,
            now,
            email: args.email,
        })
    };
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
                let status = if *code == "issuer_unavailable" {
                    503
                } else {
                    401
                };
                println!("\nthe verifier would answer {status} {code}");
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
