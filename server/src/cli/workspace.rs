//! `workspace ...`: create, list and change workspaces and their keys, through the same store
//! methods as the admin API (with `cli` as the audit actor), and print them for a person or as
//! JSON.

use clap::Subcommand;
use dropfix_core::StrictMode;
use serde_json::json;

use super::data_dir::{DataDir, with_store};
use super::{CLI_ACTOR, CliResult, print_rows};
use crate::web::now;
use crate::workspace::{self, NewKey, NewWorkspace, Workspace, WorkspacePatch};

#[derive(Debug, Subcommand)]
pub(super) enum WorkspaceCommand {
    /// Create a workspace; prints its app id and first secret key (shown once).
    Create {
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// off | report_only | on
        #[arg(long, default_value = "off", value_parser = parse_strict)]
        strict: StrictMode,
        /// Reject the seed form and unsigned calls: only signed-claims tokens verify.
        #[arg(long)]
        require_signed_claims: bool,
        /// Browser origin allowed to call identify (repeatable; `https://app.example.com`,
        /// `http://localhost:*`, `*`). Default: localhost and 127.0.0.1 on any port.
        #[arg(long = "allowed-origin", value_parser = parse_origin)]
        allowed_origins: Vec<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// List workspaces and their keys (no secrets).
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Change settings; a running server picks them up within a second.
    Set {
        app_id: String,
        #[arg(long, value_parser = parse_strict)]
        strict: Option<StrictMode>,
        #[arg(long)]
        require_signed_claims: Option<bool>,
        /// Replaces the allowed origins (repeatable).
        #[arg(long = "allowed-origin", value_parser = parse_origin)]
        allowed_origins: Vec<String>,
        #[arg(long, value_parser = parse_name)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Add a secret key (a workspace has at most 10 live keys); the secret is shown once.
    AddKey {
        app_id: String,
        /// A name to tell keys apart (e.g. the service or environment that uses it).
        #[arg(long, default_value = "default")]
        label: String,
        /// The key stops verifying after this many seconds (default: never).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Replace a key with a new one; the old key keeps verifying for the grace period. No other
    /// key changes (a key still in an earlier grace period keeps its own).
    Roll {
        app_id: String,
        /// The key to roll (default: the newest live key).
        #[arg(long)]
        key: Option<i64>,
        /// How long the old key keeps verifying: `now`, `1h`, `24h`, `7d` or seconds.
        #[arg(long, default_value = "7d", value_parser = parse_grace)]
        grace: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Stop a key verifying now (refused for the only live key).
    Retire {
        app_id: String,
        #[arg(long)]
        key: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Trust a token issuer: your backend's public key (its private key signs tokens; DropFix
    /// stores nothing that can sign), or your identity provider's JWKS URL (the browser passes
    /// the ID/access token it already has). Running servers pick it up within a second.
    AddIssuer {
        app_id: String,
        /// A name for it in this workspace (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// A file with the public key(s): PEM (`PUBLIC KEY` or `CERTIFICATE`), a JWK or a JWKS.
        #[arg(
            long,
            conflicts_with = "jwks_url",
            required_unless_present = "jwks_url"
        )]
        public_key: Option<std::path::PathBuf>,
        /// The key's `kid`, when the file holds one key without its own.
        #[arg(long, requires = "public_key")]
        kid: Option<String>,
        /// The identity provider's JWKS URL (https).
        #[arg(long)]
        jwks_url: Option<String>,
        /// The exact `iss` of its tokens (required with --jwks-url; without it, a public-key
        /// issuer's tokens must carry no iss).
        #[arg(long)]
        iss: Option<String>,
        /// An accepted `aud` (repeatable; required with --jwks-url: your app's client id or API
        /// identifier).
        #[arg(long = "aud")]
        audiences: Vec<String>,
        /// The claim that holds the user id.
        #[arg(long, default_value = "sub")]
        user_claim: String,
        /// A claim that becomes a trait, `CLAIM=TRAIT` (repeatable; a dotted path reaches into
        /// objects). Given: only these. Default: email and name for --jwks-url; for a public key,
        /// every claim of the token that is not a registered one (the signed-claims format).
        #[arg(long = "map", value_parser = crate::issuers::parse_claim_map)]
        claims: Vec<crate::issuers::ClaimMap>,
        /// An allowed algorithm (repeatable; default ES256, ES384, EdDSA, RS256, PS256).
        #[arg(long = "alg")]
        algorithms: Vec<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a token issuer.
    RemoveIssuer {
        app_id: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Roll the newest key (same as `roll` without `--key`), grace in seconds.
    Rotate {
        app_id: String,
        #[arg(long, default_value_t = workspace::DEFAULT_ROTATION_GRACE_SECS)]
        grace_seconds: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// End every grace period now: only the newest key verifies.
    RetireOld {
        app_id: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
}

fn parse_strict(s: &str) -> Result<StrictMode, String> {
    StrictMode::parse(s).ok_or_else(|| "expected off, report_only or on".to_string())
}

fn parse_name(s: &str) -> Result<String, String> {
    workspace::validate_name(s).map(|()| s.to_string())
}

fn parse_origin(s: &str) -> Result<String, String> {
    workspace::validate_origin_pattern(s).map(|()| s.to_string())
}

/// `now`, `1h`, `24h`, `7d`, or a number of seconds, up to 30 days.
fn parse_grace(s: &str) -> Result<i64, String> {
    let secs = match s.trim() {
        "now" | "0" => 0,
        t => {
            let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((i, _)) => t.split_at(i),
                None => (t, "s"),
            };
            let n: i64 = num
                .parse()
                .map_err(|_| format!("expected now, 1h, 24h, 7d or seconds, got {s:?}"))?;
            let unit_secs = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
            };
            n.checked_mul(unit_secs).ok_or("grace period too long")?
        }
    };
    if secs > crate::admin::MAX_GRACE_SECS {
        return Err("the longest grace period is 30 days".into());
    }
    Ok(secs)
}

pub(super) fn workspace_command(cmd: WorkspaceCommand) -> CliResult {
    match cmd {
        WorkspaceCommand::Create {
            name,
            strict,
            require_signed_claims,
            allowed_origins,
            data,
            json,
        } => with_store(&data, |store| async move {
            let allowed_origins = if allowed_origins.is_empty() {
                workspace::DEV_ORIGINS.map(String::from).to_vec()
            } else {
                allowed_origins
            };
            let new = NewWorkspace {
                name,
                strict,
                require_signed_claims,
                allowed_origins,
            };
            let k = store.create_workspace(&new, CLI_ACTOR, now()).await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::List { data, json } => with_store(&data, |store| async move {
            let list = store.workspaces().await?;
            if json {
                let v: Vec<_> = list.iter().map(Workspace::summary).collect();
                println!("{}", json!({ "workspaces": v }));
            } else {
                for (i, ws) in list.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_workspace(ws, None, false);
                }
            }
            Ok(())
        }),
        WorkspaceCommand::Set {
            app_id,
            strict,
            require_signed_claims,
            allowed_origins,
            name,
            data,
            json,
        } => with_store(&data, |store| async move {
            let patch = WorkspacePatch {
                name,
                strict,
                require_signed_claims,
                allowed_origins: (!allowed_origins.is_empty()).then_some(allowed_origins),
            };
            let ws = store
                .update_workspace(&app_id, &patch, CLI_ACTOR, now())
                .await?;
            print_workspace(&ws, None, json);
            Ok(())
        }),
        WorkspaceCommand::AddKey {
            app_id,
            label,
            expires_in_secs,
            data,
            json,
        } => with_store(&data, |store| async move {
            let now = now();
            let expires_at = expires_in_secs.map(|s| now.saturating_add(s));
            let k = store
                .create_key(&app_id, &label, expires_at, CLI_ACTOR, now)
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::Roll {
            app_id,
            key,
            grace,
            data,
            json,
        } => with_store(&data, |store| async move {
            let k = store
                .roll_key(&app_id, key, grace, CLI_ACTOR, now())
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::Retire {
            app_id,
            key,
            data,
            json,
        } => with_store(&data, |store| async move {
            let ws = store.retire_key(&app_id, key, CLI_ACTOR, now()).await?;
            print_workspace(&ws, None, json);
            Ok(())
        }),
        WorkspaceCommand::Rotate {
            app_id,
            grace_seconds,
            data,
            json,
        } => with_store(&data, |store| async move {
            if !(0..=crate::admin::MAX_GRACE_SECS).contains(&grace_seconds) {
                return Err("--grace-seconds must be between 0 and 2592000 (30 days)".into());
            }
            let k = store
                .roll_key(&app_id, None, grace_seconds, CLI_ACTOR, now())
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::AddIssuer {
            app_id,
            name,
            public_key,
            kid,
            jwks_url,
            iss,
            audiences,
            user_claim,
            claims,
            algorithms,
            data,
            json,
        } => {
            let public_keys = match &public_key {
                Some(path) => vec![
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                        .into(),
                ],
                None => Vec::new(),
            };
            let input = crate::issuers::IssuerInput {
                name,
                iss,
                audiences,
                user_claim: Some(user_claim),
                claims: (!claims.is_empty()).then_some(claims),
                algorithms: (!algorithms.is_empty()).then_some(algorithms),
                jwks_url,
                public_keys,
                kid,
            };
            let config = input.into_config()?;
            with_store(&data, |store| async move {
                let ws = store.add_issuer(&app_id, config, CLI_ACTOR, now()).await?;
                print_workspace(&ws, None, json);
                Ok(())
            })
        }
        WorkspaceCommand::RemoveIssuer {
            app_id,
            name,
            data,
            json,
        } => with_store(&data, |store| async move {
            let ws = store
                .remove_issuer(&app_id, &name, CLI_ACTOR, now())
                .await?;
            print_workspace(&ws, None, json);
            Ok(())
        }),
        WorkspaceCommand::RetireOld { app_id, data, json } => {
            with_store(&data, |store| async move {
                let ws = store.retire_old_keys(&app_id, CLI_ACTOR, now()).await?;
                print_workspace(&ws, None, json);
                Ok(())
            })
        }
    }
}

fn print_workspace(ws: &Workspace, new_key: Option<&NewKey>, json_out: bool) {
    if json_out {
        let mut v = serde_json::to_value(ws.summary()).unwrap_or_default();
        if let Some(k) = new_key {
            v["key_id"] = k.key_id.into();
            v["secret"] = k.secret.expose_secret().into();
            v["claims_key"] = k.secret.expose_claims_key().into();
            if let Some(t) = k.old_key_expires_at {
                v["old_key_expires_at"] = t.into();
            }
        }
        println!("{v}");
        return;
    }
    let mut rows = vec![
        ("app_id".to_string(), ws.app_id.clone()),
        ("name".to_string(), ws.name.clone()),
        ("strict".to_string(), ws.strict.as_str().to_string()),
        (
            "require_signed_claims".to_string(),
            ws.require_signed_claims.to_string(),
        ),
        ("allowed_origins".to_string(), ws.allowed_origins.join(" ")),
    ];
    let now = now();
    for k in &ws.keys {
        let mut line = format!(
            "{:?}, created {} by {}",
            k.label,
            workspace::rfc3339(k.created_at),
            k.created_by
        );
        match k.expires_at {
            Some(t) if t <= now => line.push_str(&format!(", expired {}", workspace::rfc3339(t))),
            Some(t) => line.push_str(&format!(", expires {}", workspace::rfc3339(t))),
            None => {}
        }
        if let Some(t) = k.last_used_at {
            line.push_str(&format!(", last used {}", workspace::rfc3339(t)));
        }
        rows.push((format!("key {}", k.id), line));
    }
    for i in &ws.issuers {
        let c = &i.config;
        let source = match (&c.jwks_url, &i.static_keys) {
            (Some(url), _) => format!("JWKS {url}"),
            (None, Some(keys)) => format!("public keys {}", keys.kids().join(", ")),
            (None, None) => String::new(),
        };
        let mut line = format!(
            "{source}; iss {}; user claim {}; algorithms {}",
            c.iss.as_deref().unwrap_or("(none)"),
            c.user_claim,
            c.algorithms.join(" ")
        );
        if !c.audiences.is_empty() {
            line.push_str(&format!("; aud {}", c.audiences.join(" ")));
        }
        match &c.claims {
            Some(map) => {
                let pairs: Vec<String> = map
                    .iter()
                    .map(|m| format!("{}={}", m.claim, m.to))
                    .collect();
                line.push_str(&format!("; traits {}", pairs.join(" ")));
            }
            None => line.push_str("; traits: every claim (signed-claims format)"),
        }
        rows.push((format!("issuer {}", c.name), line));
    }
    if let Some(k) = new_key {
        rows.push((
            format!("secret (key {})", k.key_id),
            k.secret.expose_secret().to_string(),
        ));
        rows.push((
            format!("claims key (key {})", k.key_id),
            k.secret.expose_claims_key().to_string(),
        ));
        if let Some(t) = k.old_key_expires_at {
            rows.push(("old key verifies until".to_string(), workspace::rfc3339(t)));
        }
    }
    print_rows(&rows);
    if new_key.is_some() {
        println!(
            "(shown once: the secret signs the seed form (DROPFIX_SECRET_KEY); the claims key signs \
             signed-claims tokens (DROPFIX_CLAIMS_KEY, HS256))"
        );
    }
}
