//! The console's pages as askama templates (`server/templates/console/`): every value is
//! HTML-escaped unless a template says otherwise (none does), and a template that names a field
//! the struct lacks fails the build.

use askama::Template;

use crate::store::{Account, CallCounts};

/// What the page frame shows: title, who is logged in, the workspace and its sections.
#[derive(Debug)]
pub struct Layout {
    pub title: String,
    pub email: Option<String>,
    pub ws: Option<WsNav>,
    /// The current section (one of [`WS_LINKS`]' paths).
    pub section: &'static str,
    pub notice: Option<String>,
}

impl Layout {
    pub fn plain(title: &str, account: Option<&Account>) -> Layout {
        Layout {
            title: title.to_string(),
            email: account.map(|a| a.email.clone()),
            ws: None,
            section: "",
            notice: None,
        }
    }
}

#[derive(Debug)]
pub struct WsNav {
    pub app_id: String,
    pub name: String,
    pub role: &'static str,
    pub links: &'static [(&'static str, &'static str)],
}

pub const WS_LINKS: &[(&str, &str)] = &[
    ("security", "Security"),
    ("rejections", "Recent rejections"),
    ("check", "Check a signature"),
    ("issuers", "Token issuers"),
    ("users", "Users"),
    ("team", "Team"),
    ("audit", "Audit log"),
];

pub const ROLES: &[(&str, &str)] = &[
    ("viewer", "Viewer: sees every page, changes nothing"),
    ("owner", "Owner: changes settings, keys and the team"),
];

pub const STRICT_CHOICES: &[(&str, &str)] = &[
    ("off", "Off: accept unsigned calls as unverified"),
    (
        "report_only",
        "Report-only: accept them, count what would be refused",
    ),
    (
        "on",
        "On: refuse calls without a valid signature (verifies the user id; plan and MRR only \
         with signed claims)",
    ),
];

pub const SHOWS: &[(&str, &str)] = &[
    ("all", "All users"),
    ("verified", "Verified"),
    ("unverified", "Unverified"),
];

#[derive(Debug)]
pub struct Link {
    pub href: String,
    pub label: String,
}

impl Link {
    pub fn new(href: &str, label: &str) -> Link {
        Link {
            href: href.to_string(),
            label: label.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    pub l: Layout,
    pub text: String,
    pub back: Option<Link>,
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub l: Layout,
    pub error: Option<String>,
    pub email: String,
}

#[derive(Debug)]
pub struct WorkspaceItem {
    pub app_id: String,
    pub name: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "console/workspaces.html")]
pub struct WorkspacesPage {
    pub l: Layout,
    pub items: Vec<WorkspaceItem>,
}

#[derive(Debug)]
pub struct KeyRow {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub created_by: String,
    pub last_used: String,
    pub status: String,
    pub live: bool,
}

#[derive(Debug)]
pub struct Window {
    pub name: &'static str,
    pub key: &'static str,
    pub c: CallCounts,
}

impl Window {
    pub fn new(name: &'static str, key: &'static str, c: CallCounts) -> Window {
        Window { name, key, c }
    }
}

#[derive(Debug)]
pub struct Seg {
    pub y: u32,
    pub h: u32,
    pub class: &'static str,
}

#[derive(Debug)]
pub struct Bar {
    pub x: u32,
    pub segs: Vec<Seg>,
}

#[derive(Debug)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub axis_y: u32,
    pub bar_w: u32,
    pub bars: Vec<Bar>,
    pub summary: String,
}

/// The workspace's protection level and what it means (see `security::protection`).
#[derive(Debug)]
pub struct Protection {
    pub level: &'static str,
    /// `open`, `user_id` or `traits`: for tests and styling.
    pub key: &'static str,
    pub detail: &'static str,
    /// Why to require signed claims, when verified calls used the seed form.
    pub recommend: Option<String>,
}

#[derive(Template)]
#[template(path = "console/security.html")]
pub struct SecurityPage {
    pub l: Layout,
    pub app_id: String,
    pub can_change: bool,
    pub live_count: usize,
    pub max_keys: usize,
    pub keys: Vec<KeyRow>,
    pub strict: &'static str,
    pub strict_label: &'static str,
    pub strict_choices: &'static [(&'static str, &'static str)],
    pub windows: Vec<Window>,
    pub chart: Chart,
    pub require_claims: bool,
    pub protection: Protection,
    pub verified_7d: u64,
    pub seed_pct: u64,
    pub claims_pct: u64,
    pub origins: Vec<String>,
    pub origins_text: String,
    pub origins_error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub struct SecretPage {
    pub l: Layout,
    pub key_id: i64,
    pub label: String,
    pub secret: String,
    pub claims_key: Option<String>,
    pub notes: Vec<String>,
    pub back: String,
}

#[derive(Debug)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub detail: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub l: Layout,
    pub paragraphs: Vec<String>,
    pub action: String,
    pub hidden: Vec<(&'static str, String)>,
    pub choices_legend: String,
    pub choices_name: &'static str,
    pub choices: Vec<Choice>,
    pub button: String,
    pub button_class: &'static str,
    pub cancel: String,
    pub can_proceed: bool,
}

#[derive(Debug)]
pub struct RejectionRow {
    pub at: String,
    pub code: String,
    pub enforced: bool,
    pub fix: &'static str,
    pub key: String,
    pub origin: String,
    pub user_id: String,
}

#[derive(Template)]
#[template(path = "console/rejections.html")]
pub struct RejectionsPage {
    pub l: Layout,
    pub max: usize,
    pub rows: Vec<RejectionRow>,
}

#[derive(Debug)]
pub struct FindingRow {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug)]
pub struct CheckResult {
    pub key_id: i64,
    pub label: String,
    pub valid: bool,
    pub code: Option<&'static str>,
    pub findings: Vec<FindingRow>,
    pub fix: Option<String>,
}

/// "Check a signature"'s answer, shown before the details per key.
#[derive(Debug)]
pub struct Verdict {
    pub ok: bool,
    pub text: String,
    pub fix: Option<String>,
}

#[derive(Template)]
#[template(path = "console/check.html")]
pub struct CheckPage {
    pub l: Layout,
    pub app_id: String,
    pub user_id: String,
    pub signature: String,
    pub signed_at: String,
    pub error: Option<String>,
    pub verdict: Option<Verdict>,
    pub results: Vec<CheckResult>,
}

/// A trait in the users list: the trusted value, or (`claimed`) what a browser only claimed.
#[derive(Debug)]
pub struct TraitCell {
    pub value: String,
    pub claimed: bool,
}

#[derive(Debug)]
pub struct UserRow {
    pub user_id: String,
    /// The user's page ([`super::context::user_url`]).
    pub url: String,
    /// Name, email and plan.
    pub traits: [TraitCell; 3],
    pub verified: bool,
    pub method: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    pub l: Layout,
    pub app_id: String,
    pub shows: &'static [(&'static str, &'static str)],
    pub show: &'static str,
    pub q: String,
    pub rows: Vec<UserRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub struct UserPage {
    pub l: Layout,
    pub can_change: bool,
    pub user_id: String,
    pub delete_url: String,
    pub verified: bool,
    pub method: String,
    pub key: String,
    pub verified_at: String,
    pub signed_at: String,
    pub first_seen: String,
    pub last_seen: String,
    /// (trait, trusted value, unverified claim)
    pub traits: Vec<(&'static str, String, String)>,
    pub custom: String,
    /// A verified user's custom traits claimed without a signature (`unverified_claims.custom`).
    pub claimed_custom: Option<String>,
}

#[derive(Debug)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub l: Layout,
    pub rows: Vec<AuditRow>,
}

#[derive(Template)]
#[template(path = "console/issuers.html")]
pub struct IssuersPage {
    pub l: Layout,
    pub app_id: String,
    pub can_change: bool,
    pub issuers: Vec<IssuerRow>,
    pub form: IssuerForm,
    pub error: Option<String>,
}

pub struct IssuerRow {
    pub name: String,
    pub source: String,
    pub iss: String,
    pub audiences: String,
    pub user_claim: String,
    pub traits: String,
    pub algorithms: String,
    pub keys: Vec<IssuerKeyRow>,
    pub fetch: Option<FetchRow>,
}

pub struct IssuerKeyRow {
    pub kid: String,
    pub kind: String,
    pub alg: String,
}

pub struct FetchRow {
    pub ok: bool,
    pub text: String,
}

/// What the add form holds (sent back with the error when it is refused).
#[derive(Default)]
pub struct IssuerForm {
    pub name: String,
    pub public_key: String,
    pub kid: String,
    pub jwks_url: String,
    pub iss: String,
    pub audiences: String,
    pub user_claim: String,
    pub claims: String,
    pub algorithms: String,
}

#[derive(Debug)]
pub struct MemberRow {
    pub email: String,
    pub role: &'static str,
    pub last_login: String,
    /// The account looking at the page.
    pub you: bool,
    /// The workspace's only owner: neither demoted nor removed.
    pub last_owner: bool,
    pub remove_url: String,
}

#[derive(Debug)]
pub struct InviteRow {
    pub email: String,
    pub role: &'static str,
    pub created_by: String,
    pub created: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "console/team.html")]
pub struct TeamPage {
    pub l: Layout,
    pub app_id: String,
    pub can_change: bool,
    pub members: Vec<MemberRow>,
    pub invites: Vec<InviteRow>,
    pub roles: &'static [(&'static str, &'static str)],
}

#[derive(Template)]
#[template(path = "console/invite_link.html")]
pub struct InviteLinkPage {
    pub l: Layout,
    pub email: String,
    pub role: &'static str,
    pub link: String,
    pub expires: String,
    pub back: String,
}

#[derive(Template)]
#[template(path = "console/accept.html")]
pub struct AcceptPage {
    pub l: Layout,
    pub action: String,
    pub workspace: String,
    pub email: String,
    pub role: &'static str,
    pub expires: String,
    /// An account with this email exists: its password proves it, none is set.
    pub existing: bool,
    pub min_chars: usize,
    pub error: Option<String>,
}
