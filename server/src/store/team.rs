//! A workspace's team, as the console's Team page runs it: members with their role and last
//! login, invitations (a one-time link whose token is stored only as its SHA-256, valid
//! [`INVITE_TTL_SECS`]), role changes and removals under the last-owner rule. Written once for
//! every backend over [`Sql`], with the facade methods on [`Store`] below the rules.
//!
//! The last-owner rule is decided in the transaction that changes a membership, with the
//! workspace's owner rows locked: two owners demoting each other at once on two instances cannot
//! both succeed and leave the workspace without an owner.

use serde_json::json;

use super::config::audit;
use super::sql::{Mode, RowLock, Sql, args};
use super::{Role, Store, StoreError, accounts};

/// How long an invitation link is valid: 72 hours.
pub const INVITE_TTL_SECS: i64 = 72 * 3600;

/// Most invitations one workspace may have pending at once (a bound on what one owner's session
/// can pile up; expired ones do not count).
pub const MAX_PENDING_INVITES: usize = 50;

/// A member of a workspace, as the Team page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    pub email: String,
    pub role: Role,
    /// The account's last console login (any workspace), `None` before the first.
    pub last_login_at: Option<i64>,
}

/// An invitation not yet accepted (never its token: the link is shown once, when it is made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvite {
    pub email: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A workspace's members (by email) and pending invitations (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Team {
    pub members: Vec<TeamMember>,
    pub invites: Vec<PendingInvite>,
}

/// What an invitation link offers, read before its page asks for a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteFor {
    pub app_id: String,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
    /// The PHC string of the account that already has this email: the invited person then proves
    /// it is theirs with that password (a link must never reset an existing account's password).
    pub existing_phc: Option<String>,
}

/// Why a team change was not made (nothing was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamRefusal {
    /// The change would leave the workspace without an owner.
    LastOwner,
    /// No member of this workspace has that email.
    NotMember,
    /// The invited email is already a member.
    AlreadyMember,
    /// [`MAX_PENDING_INVITES`] invitations are pending.
    TooManyInvites,
    /// The link is unknown, used or expired.
    InviteGone,
    /// An account with the invited email appeared (or vanished) since the link's page was shown.
    AccountChanged,
}

impl TeamRefusal {
    /// What the owner (or the invited person) reads, with what to do next.
    pub fn message(self) -> &'static str {
        match self {
            TeamRefusal::LastOwner => {
                "This is the workspace's last owner: make another member an owner first, then \
                 change or remove this one."
            }
            TeamRefusal::NotMember => "No member of this workspace has that email (any more).",
            TeamRefusal::AlreadyMember => {
                "That email is already a member of this workspace: change its role in the list \
                 instead."
            }
            TeamRefusal::TooManyInvites => {
                "Too many invitations are pending: cancel some, or wait for them to be accepted \
                 or to expire (72 hours)."
            }
            TeamRefusal::InviteGone => {
                "This invitation link is unknown, already used or expired (links are valid 72 \
                 hours). Ask an owner of the workspace for a new one."
            }
            TeamRefusal::AccountChanged => {
                "An account with this email was created or removed meanwhile. Open the \
                 invitation link again."
            }
        }
    }
}

fn role_of(s: &str) -> Role {
    // An unreadable role fails closed: look only.
    Role::parse(s).unwrap_or(Role::Viewer)
}

/// The workspace's members and live invitations.
pub(crate) async fn team(c: &mut impl Sql, app_id: &str, now: i64) -> Result<Team, StoreError> {
    let members = c
        .rows_as(
            "SELECT a.email, m.role, a.last_login_at FROM console_members m
             JOIN console_accounts a ON a.id = m.account_id
             WHERE m.app_id = $1 ORDER BY a.email",
            args![app_id],
            |r| {
                Ok(TeamMember {
                    email: r.text(0)?,
                    role: role_of(r.str(1)?),
                    last_login_at: r.opt_i64(2)?,
                })
            },
        )
        .await?;
    let invites = c
        .rows_as(
            "SELECT email, role, created_by, created_at, expires_at FROM console_invites
             WHERE app_id = $1 AND expires_at > $2 ORDER BY created_at DESC, email",
            args![app_id, now],
            |r| {
                Ok(PendingInvite {
                    email: r.text(0)?,
                    role: role_of(r.str(1)?),
                    created_by: r.text(2)?,
                    created_at: r.i64(3)?,
                    expires_at: r.i64(4)?,
                })
            },
        )
        .await?;
    Ok(Team { members, invites })
}

/// The workspace's owners, locked until the transaction ends (the last-owner rule's input).
async fn lock_owners(c: &mut impl Sql, app_id: &str) -> Result<Vec<i64>, StoreError> {
    let sql = format!(
        "SELECT account_id FROM console_members WHERE app_id = $1 AND role = 'owner'{}",
        c.row_lock(RowLock::Update)
    );
    c.rows_as(&sql, args![app_id], |r| r.i64(0)).await
}

/// The account id and role of the member with this (lower-cased) email.
async fn member(
    c: &mut impl Sql,
    app_id: &str,
    email: &str,
) -> Result<Option<(i64, Role)>, StoreError> {
    // Not locked here: a change locks the workspace's owners first ([`lock_owners`]), and a
    // viewer's row changes at most to nothing.
    c.row(
        "SELECT m.account_id, m.role FROM console_members m
         JOIN console_accounts a ON a.id = m.account_id
         WHERE m.app_id = $1 AND a.email = $2",
        args![app_id, email],
    )
    .await?
    .map(|r| Ok((r.i64(0)?, role_of(r.str(1)?))))
    .transpose()
}

/// Stores an invitation (replacing a pending one for the same email); its expiry, or why not.
pub(crate) async fn invite(
    c: &mut impl Sql,
    app_id: &str,
    email: &str,
    role: Role,
    token_sha256: &[u8; 32],
    actor: &str,
    now: i64,
) -> Result<Result<i64, TeamRefusal>, StoreError> {
    // Share-locked: the workspace cannot vanish before the invitation commits.
    let sql = format!(
        "SELECT 1 FROM workspaces WHERE app_id = $1{}",
        c.row_lock(RowLock::Share)
    );
    c.row(&sql, args![app_id])
        .await?
        .ok_or(StoreError::WorkspaceNotFound)?;
    let email = email.to_lowercase();
    if member(c, app_id, &email).await?.is_some() {
        return Ok(Err(TeamRefusal::AlreadyMember));
    }
    c.exec(
        "DELETE FROM console_invites WHERE app_id = $1 AND (expires_at <= $2 OR email = $3)",
        args![app_id, now, &email],
    )
    .await?;
    let pending = c
        .rows(
            "SELECT email FROM console_invites WHERE app_id = $1",
            args![app_id],
        )
        .await?
        .len();
    if pending >= MAX_PENDING_INVITES {
        return Ok(Err(TeamRefusal::TooManyInvites));
    }
    let expires_at = now + INVITE_TTL_SECS;
    c.exec(
        "INSERT INTO console_invites
             (token_sha256, app_id, email, role, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            &token_sha256[..],
            app_id,
            &email,
            role.as_str(),
            actor,
            now,
            expires_at
        ],
    )
    .await?;
    let detail = json!({"email": email, "role": role.as_str(), "expires_at": expires_at});
    audit(c, app_id, actor, "member.invite", detail, now).await?;
    Ok(Ok(expires_at))
}

/// Cancels the pending invitation for this email; `false` when there is none.
pub(crate) async fn revoke_invite(
    c: &mut impl Sql,
    app_id: &str,
    email: &str,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let email = email.to_lowercase();
    let n = c
        .exec(
            "DELETE FROM console_invites WHERE app_id = $1 AND email = $2 AND expires_at > $3",
            args![app_id, &email, now],
        )
        .await?;
    if n > 0 {
        audit(
            c,
            app_id,
            actor,
            "member.invite_cancel",
            json!({"email": email}),
            now,
        )
        .await?;
    }
    Ok(n > 0)
}

/// What a live invitation link offers.
pub(crate) async fn invite_for(
    c: &mut impl Sql,
    token_sha256: &[u8; 32],
    now: i64,
) -> Result<Option<InviteFor>, StoreError> {
    let Some(r) = c
        .row(
            "SELECT i.app_id, i.email, i.role, i.expires_at, a.password_phc
             FROM console_invites i LEFT JOIN console_accounts a ON a.email = i.email
             WHERE i.token_sha256 = $1 AND i.expires_at > $2",
            args![&token_sha256[..], now],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(InviteFor {
        app_id: r.text(0)?,
        email: r.text(1)?,
        role: role_of(r.str(2)?),
        expires_at: r.i64(3)?,
        existing_phc: r.opt_text(4)?,
    }))
}

/// Accepts an invitation: creates the account with `new_phc` (when the email has none; the
/// caller checked the existing account's password otherwise, which `existing` says), makes it a
/// member with the invited role, and uses the link up. Returns the workspace and email.
pub(crate) async fn accept_invite(
    c: &mut impl Sql,
    token_sha256: &[u8; 32],
    new_phc: Option<&str>,
    now: i64,
) -> Result<Result<(String, String), TeamRefusal>, StoreError> {
    let sql = format!(
        "SELECT app_id, email, role, created_by FROM console_invites
         WHERE token_sha256 = $1 AND expires_at > $2{}",
        c.row_lock(RowLock::Update)
    );
    let Some(r) = c.row(&sql, args![&token_sha256[..], now]).await? else {
        return Ok(Err(TeamRefusal::InviteGone));
    };
    let (app_id, email, role, invited_by) =
        (r.text(0)?, r.text(1)?, role_of(r.str(2)?), r.text(3)?);
    let exists = accounts::account_login(c, &email).await?.is_some();
    match (exists, new_phc) {
        (false, Some(phc)) => {
            if accounts::create_account(c, &email, phc, now)
                .await?
                .is_none()
            {
                return Ok(Err(TeamRefusal::AccountChanged));
            }
        }
        (true, None) => {}
        _ => return Ok(Err(TeamRefusal::AccountChanged)),
    }
    c.exec(
        "DELETE FROM console_invites WHERE token_sha256 = $1",
        args![&token_sha256[..]],
    )
    .await?;
    // Audited as the invited person joining; `add_member` audits the role it gives.
    let detail = json!({"email": email, "role": role.as_str(), "invited_by": invited_by});
    audit(c, &app_id, &email, "member.join", detail, now).await?;
    if !accounts::add_member(c, &email, &app_id, role, &email, now).await? {
        return Ok(Err(TeamRefusal::AccountChanged));
    }
    Ok(Ok((app_id, email)))
}

/// Changes a member's role (`Some`) or removes the member (`None`), refusing what would leave
/// the workspace without an owner.
pub(crate) async fn change_member(
    c: &mut impl Sql,
    app_id: &str,
    email: &str,
    role: Option<Role>,
    actor: &str,
    now: i64,
) -> Result<Result<(), TeamRefusal>, StoreError> {
    let owners = lock_owners(c, app_id).await?;
    let email = email.to_lowercase();
    let Some((account_id, current)) = member(c, app_id, &email).await? else {
        return Ok(Err(TeamRefusal::NotMember));
    };
    if role == Some(current) {
        return Ok(Ok(()));
    }
    if current == Role::Owner && owners.len() <= 1 {
        return Ok(Err(TeamRefusal::LastOwner));
    }
    match role {
        Some(role) => {
            c.exec(
                "UPDATE console_members SET role = $1 WHERE account_id = $2 AND app_id = $3",
                args![role.as_str(), account_id, app_id],
            )
            .await?;
            let detail = json!({"email": email, "from": current.as_str(), "to": role.as_str()});
            audit(c, app_id, actor, "member.role", detail, now).await?;
        }
        None => {
            c.exec(
                "DELETE FROM console_members WHERE account_id = $1 AND app_id = $2",
                args![account_id, app_id],
            )
            .await?;
            let detail = json!({"email": email, "role": current.as_str()});
            audit(c, app_id, actor, "member.remove", detail, now).await?;
        }
    }
    Ok(Ok(()))
}

/// Runs a rule on whichever backend this is (as `on_backend!` in `mod.rs` does).
macro_rules! on {
    ($self:ident, $mode:expr, |$c:ident| $rule:expr) => {
        $self.counted(match $self {
            Store::Sqlite(s) => {
                s.run($mode, move |$c, _ring| super::sql::run_now($rule))
                    .await
            }
            Store::Postgres(s) => s.run($mode, async move |$c, _ring| $rule.await).await,
        })
    };
}

impl Store {
    /// A workspace's members (by email, with role and last login) and pending invitations.
    pub async fn team(&self, app_id: &str, now: i64) -> Result<Team, StoreError> {
        let app = app_id.to_owned();
        on!(self, Mode::Read, |c| team(c, &app, now))
    }

    /// Invites `email` into a workspace with `role`: stores the link's token as its SHA-256 and
    /// audits it; returns when the link expires, or why it was not made.
    pub async fn invite_member(
        &self,
        app_id: &str,
        email: &str,
        role: Role,
        token_sha256: [u8; 32],
        actor: &str,
        now: i64,
    ) -> Result<Result<i64, TeamRefusal>, StoreError> {
        let (app, email, actor) = (app_id.to_owned(), email.to_owned(), actor.to_owned());
        on!(self, Mode::Write, |c| invite(
            c,
            &app,
            &email,
            role,
            &token_sha256,
            &actor,
            now
        ))
    }

    /// Cancels a pending invitation; `false` when there is none for this email.
    pub async fn revoke_invite(
        &self,
        app_id: &str,
        email: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (app, email, actor) = (app_id.to_owned(), email.to_owned(), actor.to_owned());
        on!(self, Mode::Write, |c| revoke_invite(
            c, &app, &email, &actor, now
        ))
    }

    /// What a live invitation link offers; `None` when it is unknown, used or expired.
    pub async fn invite_for(
        &self,
        token_sha256: [u8; 32],
        now: i64,
    ) -> Result<Option<InviteFor>, StoreError> {
        on!(self, Mode::Read, |c| invite_for(c, &token_sha256, now))
    }

    /// Accepts an invitation (see [`accept_invite`]), in one transaction.
    pub async fn accept_invite(
        &self,
        token_sha256: [u8; 32],
        new_phc: Option<&str>,
        now: i64,
    ) -> Result<Result<(String, String), TeamRefusal>, StoreError> {
        let phc = new_phc.map(str::to_owned);
        on!(self, Mode::Write, |c| accept_invite(
            c,
            &token_sha256,
            phc.as_deref(),
            now
        ))
    }

    /// Changes a member's role (`Some`) or removes the member (`None`), under the last-owner
    /// rule, audited. A removed member's sessions stop reaching the workspace on their next
    /// request (memberships are read per request).
    pub async fn change_member(
        &self,
        app_id: &str,
        email: &str,
        role: Option<Role>,
        actor: &str,
        now: i64,
    ) -> Result<Result<(), TeamRefusal>, StoreError> {
        let (app, email, actor) = (app_id.to_owned(), email.to_owned(), actor.to_owned());
        on!(self, Mode::Write, |c| change_member(
            c, &app, &email, role, &actor, now
        ))
    }
}
