//! `user ...`: console accounts. Create them, give them a role in a workspace or take it away,
//! replace a password (read from standard input or a flag), delete them, list them.

use clap::{Args, Subcommand};
use serde_json::json;

use super::data_dir::{DataDir, with_store};
use super::{CLI_ACTOR, CliResult, print_rows};
use crate::store::{AccountChange, Role};
use crate::web::now;

/// How a console account's password is given.
#[derive(Debug, Args)]
pub(super) struct PasswordArgs {
    /// Read the password from the first line of standard input (keeps it out of `ps`).
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The password (visible to other users in `ps`; prefer --password-stdin).
    #[arg(long)]
    password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Create a console account and give it a role in a workspace.
    Create {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// The workspace (app id) the account belongs to.
        #[arg(long)]
        workspace: String,
        /// owner (may change settings) or viewer (may only look).
        #[arg(long, default_value = "owner", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        data: DataDir,
    },
    /// Give an existing account a role in another workspace (or change its role there).
    AddToWorkspace {
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        data: DataDir,
    },
    /// Take an account's role in one workspace away (its other workspaces stay). Its open
    /// sessions lose that workspace on their next request.
    RemoveFromWorkspace {
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Replace an account's password and end every session it has (a lost or leaked password).
    SetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataDir,
    },
    /// Delete an account: its memberships and sessions end at once (someone who left).
    Delete {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List console accounts and their workspaces.
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected owner or viewer".to_string())
}

pub(super) fn user_command(cmd: UserCommand) -> CliResult {
    match cmd {
        UserCommand::Create {
            email,
            password,
            workspace,
            role,
            data,
        } => {
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.chars().any(char::is_whitespace) {
                return Err(format!("{email:?} is not an email address").into());
            }
            let password = read_password(password)?;
            let phc = crate::console::session::hash_password(&password)?;
            with_store(&data, |store| async move {
                if !store
                    .workspaces()
                    .await?
                    .iter()
                    .any(|w| w.app_id == workspace)
                {
                    return Err(format!("no workspace has app id {workspace}").into());
                }
                if store.create_account(&email, &phc, now()).await?.is_none() {
                    return Err(format!(
                        "an account with email {email} exists; use `user add-to-workspace`"
                    )
                    .into());
                }
                store
                    .add_member(&email, &workspace, role, CLI_ACTOR, now())
                    .await?;
                println!(
                    "created console account {email} ({} of {workspace})",
                    role.as_str()
                );
                Ok(())
            })
        }
        UserCommand::AddToWorkspace {
            email,
            workspace,
            role,
            data,
        } => with_store(&data, |store| async move {
            if !store
                .add_member(&email, &workspace, role, CLI_ACTOR, now())
                .await?
            {
                return Err(format!("no console account has email {email}").into());
            }
            println!("{email} is now {} of {workspace}", role.as_str());
            Ok(())
        }),
        UserCommand::RemoveFromWorkspace {
            email,
            workspace,
            data,
        } => {
            let change = AccountChange::RemoveFrom(workspace.clone());
            change_account(&data, &email, &change)?;
            println!("{email} no longer has access to {workspace}");
            Ok(())
        }
        UserCommand::SetPassword {
            email,
            password,
            data,
        } => {
            let password = read_password(password)?;
            let phc = crate::console::session::hash_password(&password)?;
            change_account(&data, &email, &AccountChange::SetPassword(phc))?;
            println!("{email} has a new password; every session it had has ended");
            Ok(())
        }
        UserCommand::Delete { email, data } => {
            change_account(&data, &email, &AccountChange::Delete)?;
            println!("{email} is deleted; its sessions have ended");
            Ok(())
        }
        UserCommand::List { data, json } => with_store(&data, |store| async move {
            let accounts = store.list_accounts().await?;
            if json {
                let v: Vec<_> = accounts
                    .iter()
                    .map(|a| {
                        json!({"email": a.email, "created_at": a.created_at,
                            "workspaces": a.memberships.iter()
                                .map(|m| json!({"app_id": m.app_id, "role": m.role.as_str()}))
                                .collect::<Vec<_>>()})
                    })
                    .collect();
                println!("{}", json!({ "accounts": v }));
            } else {
                let rows: Vec<(String, String)> = accounts
                    .iter()
                    .map(|a| {
                        let ws: Vec<String> = a
                            .memberships
                            .iter()
                            .map(|m| format!("{} ({})", m.app_id, m.role.as_str()))
                            .collect();
                        (a.email.clone(), ws.join(", "))
                    })
                    .collect();
                print_rows(&rows);
            }
            Ok(())
        }),
    }
}

fn read_password(args: PasswordArgs) -> Result<String, Box<dyn std::error::Error>> {
    let password = match (args.password_stdin, args.password) {
        (true, _) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        (false, Some(p)) => p,
        (false, None) => return Err("give the password with --password-stdin or --password".into()),
    };
    if password.chars().count() < crate::console::session::MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {} characters",
            crate::console::session::MIN_PASSWORD_CHARS
        )
        .into());
    }
    Ok(password)
}

/// Runs [`Store::change_account`](crate::store::Store::change_account); an error names what
/// was not found.
fn change_account(data: &DataDir, email: &str, change: &AccountChange) -> CliResult {
    with_store(data, |store| async move {
        if store
            .change_account(email, change, CLI_ACTOR, now())
            .await?
        {
            return Ok(());
        }
        Err(match change {
            AccountChange::RemoveFrom(app) if store.account_login(email).await?.is_some() => {
                format!("{email} is not a member of {app}")
            }
            _ => format!("no console account has email {email}"),
        }
        .into())
    })
}
