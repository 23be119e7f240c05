//! The floor of the hot-path benchmark (`bench/hotpath.sh`), never shipped: what an identify
//! call costs on the same stack with everything but the verification taken out. hyper 1 +
//! tokio and mimalloc (as dropfix-server), `serde_json` into a borrowed struct, the seed form
//! checked with a precomputed keyed HMAC (`verify_slice`, constant time) and the 300 s / 60 s
//! window; no store, no rate limits, no metrics, no CORS. It answers the mix of `bench/mix.sh`
//! exactly as dropfix-server does (200 valid, 202 unsigned, 401 wrong or expired), so the two
//! are driven by the same script.
//!
//! Usage: `dropfix-bench-floor APP_ID SECRET` -> prints `listening on http://127.0.0.1:PORT`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;

/// dropfix-server's allocator, so the floor differs from it only by the work left out.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Call<'a> {
    app_id: &'a str,
    user_id: &'a str,
    #[serde(alias = "signature")]
    hash: Option<&'a str>,
    #[serde(alias = "signed_at", rename = "signedAt")]
    signed_at: Option<i64>,
}

struct Floor {
    app_id: String,
    keyed: Hmac<Sha256>,
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn handle(
    floor: Arc<Floor>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(StatusCode::BAD_REQUEST, r#"{"error":"body"}"#));
    };
    let Ok(call) = serde_json::from_slice::<Call<'_>>(&body) else {
        return Ok(reply(StatusCode::BAD_REQUEST, r#"{"error":"json"}"#));
    };
    if call.app_id != floor.app_id {
        return Ok(reply(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unknown_app"}"#,
        ));
    }
    let Some(sig) = call.hash else {
        return Ok(reply(StatusCode::ACCEPTED, r#"{"verified":false}"#));
    };
    let mut expected = [0u8; 32];
    let at = call.signed_at.unwrap_or(0);
    let mut mac = floor.keyed.clone();
    mac.update(call.user_id.as_bytes());
    let valid = hex::decode_to_slice(sig, &mut expected).is_ok()
        && mac.verify_slice(&expected).is_ok()
        && (-60..=300).contains(&(now() - at));
    Ok(if valid {
        reply(StatusCode::OK, r#"{"verified":true}"#)
    } else {
        reply(StatusCode::UNAUTHORIZED, r#"{"error":"signature"}"#)
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(app_id), Some(secret)) = (args.next(), args.next()) else {
        eprintln!("usage: dropfix-bench-floor APP_ID SECRET");
        std::process::exit(2);
    };
    let keyed = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    let floor = Arc::new(Floor { app_id, keyed });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let floor = Arc::clone(&floor);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&floor), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
