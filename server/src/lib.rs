//! # dropfix-server
//!
//! The DropFix verifier: receives `POST /v1/identify` calls from browsers, verifies them with
//! `dropfix-core`, decides (the decision table of PROTOCOL.md), stores accepted calls durably in
//! an embedded SQLite database, and answers. Also an admin API and CLI for workspaces and keys.
//!
//! The library is the whole server; `main.rs` only parses the command line. Tests and embedders
//! call [`run`] with their own listener (bound to `127.0.0.1:0`) and shutdown future.
//!
//! This file only declares the modules and re-exports; each module uses only those listed below
//! it (server/README.md, "Layout"; server/tests/layout.rs checks that the imports form no cycle):
//!
//! - [`cli`]: command-line interface
//! - [`serve`]: the accept loop, HTTP/1.1 and HTTPS, graceful shutdown, the metrics listener
//! - [`http`]: routing, identify, CORS, health and metrics
//! - [`admin`]: the admin API; [`console`]: the web console
//! - [`web`]: what every route answers with (bodies, the error shape, bounded body reads);
//!   [`state`]: the tunables and the state every request handler shares
//! - [`stats`]: the console's live counts; [`limits`]: rate, connection and login limits;
//!   [`backup`]: backup and restore of the embedded store
//! - [`store`]: the storage interface and its backends (embedded SQLite with group commit)
//! - [`tls`]: the HTTPS certificate; [`metrics`]: the Prometheus metrics
//! - [`workspace`]: workspaces, keys and the rules on them, the in-memory registry; [`users`]:
//!   stored users and the stored-data rules of an identify call; [`sealing`]: workspace secrets
//!   encrypted at rest under a keyring of master keys; [`diagnose`]: the `debug-signature` checks
//! - [`issuers`]: token issuers (public keys, identity providers' JWKS) and their tokens' checks

pub mod admin;
pub mod backup;
pub mod cli;
pub mod console;
pub mod diagnose;
pub mod http;
pub mod issuers;
pub mod limits;
pub mod metrics;
pub mod sealing;
pub mod serve;
pub mod state;
pub mod stats;
pub mod store;
pub mod tls;
pub mod users;
pub mod web;
pub mod workspace;

pub use serve::{MAX_BUF_BYTES, MAX_HEAD_BYTES, run, run_metrics};
pub use state::{AppState, Config};
