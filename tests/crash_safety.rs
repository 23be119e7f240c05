//! "A 2xx means the record is durable: a crash right after the response loses nothing."
//!
//! Several client threads send identify calls (unsigned -> 202, seed-signed -> 200) as fast as
//! they can to the real server binary, each logging the user ids the server acknowledged with a
//! 2xx. Once enough are acknowledged the server is killed with SIGKILL (no shutdown path runs),
//! restarted on the same data dir, and every acknowledged id is looked up through the admin API:
//! each must be there, and each 200 must be there as verified. Three rounds on one data dir, so
//! a restart after a crash must also keep what earlier rounds stored.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dropfix_core::{SecretKey, seed};
use serde_json::json;
use support::{Options, Server, build_request, eventually, try_raw_request};

const ROUNDS: usize = 3;
const WORKERS: usize = 6;
/// Acknowledged writes per round before the kill (enough that the kill lands mid-stream).
const ACKED_BEFORE_KILL: usize = 150;

/// What the server acknowledged: user id -> whether it said `verified: true`.
type Acked = Arc<Mutex<BTreeMap<String, bool>>>;

fn now() -> i64 {
    dropfix_tests::now()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &Options::default());
    let (app, secret) = server.dev_workspace.clone().expect("dev workspace");
    let secret = SecretKey::new(secret);
    let acked: Acked = Arc::default();

    for round in 0..ROUNDS {
        let addr = server.addr;
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (app, secret, acked) = (app.clone(), secret.clone(), Arc::clone(&acked));
                let (count, stop) = (Arc::clone(&count), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut sent = 0usize;
                    let mut errors = 0usize;
                    for seq in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let user = format!("r{round}-w{w}-{seq}");
                        let signed = seq % 2 == 1;
                        let body = if signed {
                            json!({"app_id": app, "user_id": user,
                                   "traits": {"plan": "pro", "mrr": seq},
                                   "hash": seed::sign(&secret, &user), "signedAt": now()})
                        } else {
                            json!({"app_id": app, "user_id": user, "traits": {"plan": "free"}})
                        };
                        let req = build_request(
                            "POST",
                            "/v1/identify",
                            &[("Content-Type", "application/json")],
                            body.to_string().as_bytes(),
                        );
                        sent += 1;
                        match try_raw_request(addr, &req) {
                            Ok(r) if (200..300).contains(&r.status) => {
                                let want = if signed { 200 } else { 202 };
                                assert_eq!(r.status, want, "{user}: {}", r.text());
                                assert_eq!(r.json()["user_id"], user.as_str());
                                acked.lock().unwrap().insert(user, signed);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => panic!("{user}: unexpected {} {}", r.status, r.text()),
                            // The server is gone (killed): connection refused or reset.
                            Err(_) => {
                                errors += 1;
                                if errors > 3 {
                                    break;
                                }
                            }
                        }
                    }
                    sent
                })
            })
            .collect();

        eventually("acknowledged writes before the kill", || {
            (count.load(Ordering::Relaxed) >= ACKED_BEFORE_KILL).then_some(())
        });
        // Kill while the workers are still sending: some requests are in flight.
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let sent: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();

        server = Server::start(dir.path(), &Options::default());
        assert!(
            server.dev_workspace.is_none(),
            "a restart must not create a new dev workspace"
        );
        let acked = acked.lock().unwrap().clone();
        let mut lost = Vec::new();
        for (user, verified) in &acked {
            let r = server.admin(
                "GET",
                &format!("/v1/admin/workspaces/{app}/users/{user}"),
                None,
            );
            if r.status != 200 {
                lost.push(format!("{user}: {} {}", r.status, r.text()));
                continue;
            }
            let record = r.json();
            if record["verified"] != *verified {
                lost.push(format!("{user}: verified should be {verified}: {record}"));
            }
        }
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged writes lost after kill -9:\n{}",
            lost.len(),
            acked.len(),
            lost.join("\n")
        );
        eprintln!(
            "round {round}: {sent} sent, {} acknowledged so far, all present after kill -9",
            acked.len()
        );
        server.assert_healthy("restart after kill -9");
    }
}
