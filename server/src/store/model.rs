//! The records the store hands out and takes in besides workspaces and users: audit entries,
//! console accounts, roles and sessions, call counts and rejections.

/// One entry of a workspace's audit log: who changed what, never a secret value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    /// `workspace.create`, `workspace.update`, `key.create`, `key.roll`, `key.retire`, ...
    pub action: String,
    pub detail: serde_json::Value,
}

/// A change to a console account that takes access away ([`Store::change_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Removes its membership of this workspace (app id); its other workspaces stay.
    RemoveFrom(String),
    /// Deletes the account, its memberships and its sessions.
    Delete,
    /// Replaces its password (an argon2id PHC string) and ends every session it has.
    SetPassword(String),
}

/// A console account's role in one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Role {
    /// May change settings and keys.
    Owner,
    /// May only look.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// One workspace a console account belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub app_id: String,
    pub role: Role,
}

/// A console account with its memberships (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    /// Stored lower-cased.
    pub email: String,
    pub created_at: i64,
    pub memberships: Vec<Membership>,
}

/// What a login needs: the account and its argon2id PHC string.
#[derive(Debug, Clone)]
pub struct AccountLogin {
    pub id: i64,
    pub password_phc: String,
}

/// How a console session is checked: `token_sha256` is the SHA-256 of the cookie's token (the
/// token itself is never stored); it is valid while both limits hold.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// Ends after this many seconds without a request.
    pub idle_secs: i64,
    /// Ends this many seconds after login, however active.
    pub absolute_secs: i64,
}

/// Identify outcomes counted per workspace and minute (the console's live counts). Each call
/// counts once, in exactly one of the outcomes; `seed_with_traits` counts again, among the
/// `verified_seed` ones, those that carried plan or MRR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallCounts {
    pub verified_seed: u64,
    pub verified_claims: u64,
    /// Accepted unverified, and strict mode would accept it too (off, nothing to report).
    pub unverified: u64,
    /// Accepted unverified in report-only mode; strict mode `on` would have refused it.
    pub would_reject: u64,
    pub rejected: u64,
    /// Of `verified_seed`: calls that sent plan or MRR beside the seed form's signature, which
    /// covers the user id only (stored as verified all the same: the Security page recommends
    /// signed claims when there are any).
    pub seed_with_traits: u64,
}

impl CallCounts {
    pub fn add(&mut self, o: &CallCounts) {
        self.verified_seed += o.verified_seed;
        self.verified_claims += o.verified_claims;
        self.unverified += o.unverified;
        self.would_reject += o.would_reject;
        self.rejected += o.rejected;
        self.seed_with_traits += o.seed_with_traits;
    }

    pub fn verified(&self) -> u64 {
        self.verified_seed + self.verified_claims
    }

    /// Calls accepted without a valid signature (stored unverified), whatever the strict mode
    /// was at the time: each is a call that strict mode `on` would refuse, so this is the
    /// console's "would be rejected" in every mode, not only in report-only.
    pub fn unsigned(&self) -> u64 {
        self.unverified + self.would_reject
    }

    pub fn total(&self) -> u64 {
        self.verified() + self.unverified + self.would_reject + self.rejected
    }

    pub fn is_zero(&self) -> bool {
        self.total() == 0
    }
}

/// Counts to add to one workspace's minute bucket (`minute` = Unix seconds / 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountsDelta {
    pub app_id: String,
    pub minute: i64,
    pub counts: CallCounts,
}

/// Most recent rejections kept per workspace.
pub const MAX_RECENT_REJECTIONS: usize = 100;

/// One refused (or, in report-only mode, would-be-refused) identify call, as the console shows
/// it. Never traits, signatures or tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectionEntry {
    pub app_id: String,
    pub at: i64,
    /// The 401 (or 403 `origin_not_allowed`) code.
    pub code: String,
    /// `false` for a report-only call that was accepted unverified.
    pub enforced: bool,
    pub key_id: Option<i64>,
    pub origin: Option<String>,
    pub user_id: Option<String>,
}
