//! The console's Team page over real HTTP, in-process (as `console.rs`): an owner invites, the
//! invited person sets a password through the one-time link (or proves an existing account's),
//! roles change and members leave under the last-owner rule, every change audited; viewers
//! look only, other workspaces' owners get 404, cross-site forms change nothing, and a removed
//! member's open session loses the workspace on its next request.

mod support;

use dropfix_core::StrictMode;
use dropfix_server::Config;
use dropfix_server::console::session;
use dropfix_server::store::{INVITE_TTL_SECS, Role};
use support::{Verifier, create_member, new_workspace, now, with_store};

const PASSWORD: &str = "correct horse battery staple";
const OWNER: &str = "owner@example.com";
const OTHER: &str = "other@example.com";

struct Team {
    server: Verifier,
    app: String,
    other_app: String,
    dir: tempfile::TempDir,
}

impl Team {
    /// A workspace OWNER owns, and another that only OTHER owns.
    fn start() -> Team {
        let dir = support::data_dir();
        let phc = session::hash_password(PASSWORD).unwrap();
        let (app, other_app) = with_store(dir.path(), async |store| {
            let origins = ["http://localhost:*"];
            let mut apps = Vec::new();
            for (name, email) in [("Acme", OWNER), ("Globex", OTHER)] {
                let ws = new_workspace(name, StrictMode::Off, &origins);
                let k = store.create_workspace(&ws, "test", now()).await.unwrap();
                create_member(store, email, &phc, &k.workspace.app_id, Role::Owner).await;
                apps.push(k.workspace.app_id);
            }
            (apps[0].clone(), apps[1].clone())
        });
        Team {
            server: Verifier::embedded(dir.path(), Config::default()),
            app,
            other_app,
            dir,
        }
    }

    fn ws(&self, tail: &str) -> String {
        format!("/console/w/{}/{tail}", self.app)
    }

    /// Invites `email` as `role`; returns the link's path (`/console/invite/...`).
    fn invite(&self, cookie: &str, email: &str, role: &str) -> String {
        let r = self.server.post(
            cookie,
            &self.ws("team/invite"),
            &[("email", email), ("role", role)],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        link_in(&r.text())
    }
}

/// The invitation link's path on an invitation page.
fn link_in(page: &str) -> String {
    let at = page.find("/console/invite/").expect(page);
    let end = at + page[at..].find('"').unwrap();
    page[at..end].to_string()
}

fn audit_actions(t: &Team, cookie: &str) -> String {
    t.server.get(cookie, &t.ws("audit")).text()
}

#[test]
fn an_owner_invites_a_viewer_who_sets_a_password_looks_only_and_is_removed() {
    let t = Team::start();
    let s = &t.server;
    let owner = s.login(OWNER, PASSWORD);
    let page = s.get(&owner, &t.ws("team")).text();
    assert!(page.contains("data-member=\"owner@example.com\""), "{page}");
    assert!(
        page.contains("Last owner: make another member an owner"),
        "{page}"
    );
    assert!(
        !page.contains(">never<"),
        "the owner's login is shown: {page}"
    );

    let link = t.invite(&owner, "Vera@Example.com", "viewer");
    assert!(link.len() == "/console/invite/".len() + 64, "{link}");
    let invitation = s.get(&owner, &t.ws("team")).text();
    assert!(invitation.contains("vera@example.com"), "{invitation}");
    assert!(!invitation.contains(&link), "the link is shown once");

    // The link's page needs no session and says what it offers.
    let offer = s.get("", &link);
    assert_eq!(offer.status, 200);
    let text = offer.text();
    assert!(text.contains("vera@example.com") && text.contains("viewer") && text.contains("Acme"));
    assert!(text.contains("Choose a password"), "{text}");
    // Bad passwords change nothing.
    let short = s.post("", &link, &[("password", "short"), ("password2", "short")]);
    assert_eq!(short.status, 422);
    let differ = s.post(
        "",
        &link,
        &[("password", PASSWORD), ("password2", "another password!")],
    );
    assert_eq!(differ.status, 422);
    assert_eq!(s.try_login("vera@example.com", PASSWORD).status, 401);
    // A cross-site form cannot accept it.
    let cross = s.post_with(
        "",
        &link,
        &[("password", PASSWORD), ("password2", PASSWORD)],
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(cross.status, 403);
    let joined = s.post(
        "",
        &link,
        &[("password", PASSWORD), ("password2", PASSWORD)],
    );
    assert_eq!(joined.status, 200, "{}", joined.text());
    assert!(
        joined
            .text()
            .contains("vera@example.com is now viewer of Acme")
    );
    // Once only.
    assert_eq!(s.get("", &link).status, 404);
    let again = s.post(
        "",
        &link,
        &[("password", PASSWORD), ("password2", PASSWORD)],
    );
    assert_eq!(again.status, 404);

    // The viewer sees the list and no controls; every change is 403 and changes nothing.
    let viewer = s.login("vera@example.com", PASSWORD);
    let page = s.get(&viewer, &t.ws("team")).text();
    assert!(page.contains("data-member=\"vera@example.com\""));
    for control in ["Create invitation link", "Save role", "team/remove"] {
        assert!(!page.contains(control), "{control} shown to a viewer");
    }
    let attempts: [(&str, &[(&str, &str)]); 4] = [
        (
            "team/invite",
            &[("email", "x@example.com"), ("role", "owner")],
        ),
        (
            "team/role",
            &[("email", "vera@example.com"), ("role", "owner")],
        ),
        ("team/remove", &[("email", OWNER)]),
        ("team/cancel", &[("email", "x@example.com")]),
    ];
    for (path, form) in attempts {
        assert_eq!(s.post(&viewer, &t.ws(path), form).status, 403, "{path}");
    }
    let confirm = format!("{}?email={OWNER}", t.ws("team/remove"));
    assert_eq!(s.get(&viewer, &confirm).status, 403);
    let page = s.get(&owner, &t.ws("team")).text();
    assert!(page.contains("Last owner"), "still the only owner: {page}");

    // The last owner can neither demote nor remove themselves.
    let demote = s.post(
        &owner,
        &t.ws("team/role"),
        &[("email", OWNER), ("role", "viewer")],
    );
    assert_eq!(demote.status, 409);
    assert!(demote.text().contains("last owner"), "{}", demote.text());
    let leave = s.post(&owner, &t.ws("team/remove"), &[("email", OWNER)]);
    assert_eq!(leave.status, 409);

    // Promote, demote back, then remove: the open session loses the workspace at once.
    for role in ["owner", "viewer"] {
        let r = s.post(
            &owner,
            &t.ws("team/role"),
            &[("email", "vera@example.com"), ("role", role)],
        );
        assert_eq!(r.status, 303, "{role}");
    }
    assert_eq!(s.get(&owner, &confirm).status, 200);
    let r = s.post(
        &owner,
        &t.ws("team/remove"),
        &[("email", "vera@example.com")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(s.get(&viewer, &t.ws("security")).status, 404);
    assert_eq!(s.get(&viewer, &t.ws("team")).status, 404);
    assert!(
        !s.get(&owner, &t.ws("team"))
            .text()
            .contains("vera@example.com")
    );

    let audit = audit_actions(&t, &owner);
    for action in [
        "member.invite",
        "member.join",
        "member.role",
        "member.remove",
    ] {
        assert!(audit.contains(action), "{action} not audited");
    }
    assert!(
        !audit.contains(&link[16..]),
        "the link's token is never audited"
    );
}

#[test]
fn an_existing_account_joins_with_its_own_password_and_keeps_it() {
    let t = Team::start();
    let s = &t.server;
    let owner = s.login(OWNER, PASSWORD);
    let link = t.invite(&owner, OTHER, "owner");
    let text = s.get("", &link).text();
    assert!(
        text.contains("A console account with this email exists"),
        "{text}"
    );
    // The link holder cannot set a new password for that account, nor join with a wrong one.
    let wrong = s.post(
        "",
        &link,
        &[
            ("password", "not the password!"),
            ("password2", "not the password!"),
        ],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(s.try_login(OTHER, "not the password!").status, 401);
    let other = s.login(OTHER, PASSWORD);
    assert_eq!(s.get(&other, &t.ws("security")).status, 404);
    let ok = s.post("", &link, &[("password", PASSWORD)]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Memberships are read per request: the open session reaches the workspace now.
    assert_eq!(s.get(&other, &t.ws("security")).status, 200);
    assert_eq!(
        s.get(&other, &format!("/console/w/{}/team", t.other_app))
            .status,
        200
    );
    // Two owners now: either may step down.
    let r = s.post(
        &other,
        &t.ws("team/role"),
        &[("email", OWNER), ("role", "viewer")],
    );
    assert_eq!(r.status, 303);
}

#[test]
fn other_workspaces_bad_forms_cross_site_posts_and_stale_links_change_nothing() {
    let t = Team::start();
    let s = &t.server;
    let owner = s.login(OWNER, PASSWORD);
    let other = s.login(OTHER, PASSWORD);
    // Another workspace's owner: 404 for every team page and change, as for any page there.
    assert_eq!(s.get(&other, &t.ws("team")).status, 404);
    let r = s.post(
        &other,
        &t.ws("team/invite"),
        &[("email", "x@example.com"), ("role", "owner")],
    );
    assert_eq!(r.status, 404);
    let r = s.post(&other, &t.ws("team/remove"), &[("email", OWNER)]);
    assert_eq!(r.status, 404);
    // Cross-site: refused before anything runs.
    let r = s.post_with(
        &owner,
        &t.ws("team/invite"),
        &[("email", "x@example.com"), ("role", "owner")],
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403);
    // Bad input says what to fix and stores nothing.
    for (email, role) in [
        ("not an email", "viewer"),
        ("x@example.com", "admin"),
        ("", "viewer"),
    ] {
        let r = s.post(
            &owner,
            &t.ws("team/invite"),
            &[("email", email), ("role", role)],
        );
        assert_eq!(r.status, 400, "{email:?} {role:?}");
    }
    let r = s.post(
        &owner,
        &t.ws("team/invite"),
        &[("email", OWNER), ("role", "viewer")],
    );
    assert_eq!(r.status, 409, "already a member");
    let r = s.post(
        &owner,
        &t.ws("team/role"),
        &[("email", "nobody@example.com"), ("role", "owner")],
    );
    assert_eq!(r.status, 404);
    let page = s.get(&owner, &t.ws("team")).text();
    assert!(
        page.contains("Pending invitations</h2>\n  <p>None.</p>"),
        "{page}"
    );
    // Escaping: an email with markup is shown as text.
    let r = s.post(
        &owner,
        &t.ws("team/invite"),
        &[("email", "<b>x</b>@example.com"), ("role", "viewer")],
    );
    assert_eq!(r.status, 200);
    let page = s.get(&owner, &t.ws("team")).text();
    assert!(
        page.contains("&#60;b&#62;x&#60;/b&#62;@example.com"),
        "{page}"
    );
    assert!(!page.contains("<b>x</b>"));
    // Unknown and malformed links are one 404, expired ones too.
    for bad in [
        "/console/invite/abc",
        &format!("/console/invite/{}", "0".repeat(64)),
    ] {
        assert_eq!(s.get("", bad).status, 404, "{bad}");
    }
    let expired = with_store(t.dir.path(), async |store| {
        let (token, digest) = session::new_token();
        store
            .invite_member(
                &t.app,
                "late@example.com",
                Role::Viewer,
                digest,
                OWNER,
                now() - INVITE_TTL_SECS,
            )
            .await
            .unwrap()
            .unwrap();
        token
    });
    let link = format!("/console/invite/{expired}");
    assert_eq!(s.get("", &link).status, 404);
    let r = s.post(
        "",
        &link,
        &[("password", PASSWORD), ("password2", PASSWORD)],
    );
    assert_eq!(r.status, 404);
    assert_eq!(s.try_login("late@example.com", PASSWORD).status, 401);
    // Cancelling a pending invitation ends its link.
    let link = t.invite(&owner, "cancel@example.com", "viewer");
    let r = s.post(
        &owner,
        &t.ws("team/cancel"),
        &[("email", "cancel@example.com")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(s.get("", &link).status, 404);
}

#[test]
fn accepting_spends_the_login_limits_of_the_invited_email() {
    let t = Team::start();
    let s = &t.server;
    let owner = s.login(OWNER, PASSWORD);
    let link = t.invite(&owner, OTHER, "viewer");
    // Wrong passwords for the existing account: the same per-(account, client) budget as logins.
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            s.post("", &link, &[("password", "wrong password!!")])
                .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|&st| st == 401 || st == 429),
        "{statuses:?}"
    );
}
