//! What every route answers with: the response bodies (whole, or streamed as produced), the one
//! JSON error shape, the common refusals (method, store), reading a request body within its
//! size and time limits, and the clock. Below every route (identify, admin, console, metrics), so
//! none of them reaches into another for these.

// read_body returns the finished error response as its `Err`: it is built once, on a cold path.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use crate::store::StoreError;

/// Every response body: whole (nearly all), or sent as it is produced ([`ChannelBody`]: the CSV
/// export, whose size grows with the users).
pub type Body = Either<Full<Bytes>, ChannelBody>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// A body whose chunks arrive on a bounded channel: the producer waits while the client is slow,
/// so memory stays at a few chunks whatever the size. An `Err` chunk aborts the response (the
/// client sees a truncated transfer, never a complete-looking one).
#[derive(Debug)]
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

/// A streamed body and the sender that feeds it (at most `chunks` waiting at a time).
pub fn channel_body(
    chunks: usize,
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(chunks);
    (tx, Either::Right(ChannelBody(rx)))
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// Sets fixed headers, from a table (what a kind of answer always carries).
pub fn set_headers(h: &mut hyper::HeaderMap, headers: &[(header::HeaderName, &'static str)]) {
    for (name, value) in headers {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    json_bytes(
        status,
        serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// A JSON response around an already serialized body.
pub(crate) fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    uncached(status, "application/json", bytes)
}

/// A whole body of `content_type` that no cache may keep (answers, errors and counts are of the
/// moment).
pub(crate) fn uncached(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(full(bytes));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The one error shape.
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response<Body> {
    #[derive(Serialize)]
    struct Outer<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
    }
    let field = field.filter(|f| !f.is_empty());
    json_response(
        status,
        &Outer {
            error: Inner {
                code,
                message,
                field,
            },
        },
    )
}

pub(crate) fn store_unavailable(e: &StoreError) -> Response<Body> {
    tracing::error!(error = %e, "store failure");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the verifier's store did not answer in time; retry later",
        None,
    )
}
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this endpoint accepts {allow} only"),
        None,
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

fn too_large(limit: usize) -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!("the request body is larger than {limit} bytes"),
        None,
    )
}

/// Reads a body of at most `limit` bytes within `timeout` (the configured body timeout).
pub(crate) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let body = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(timeout, body.collect()).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
            None,
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Ok(Err(_)) => Err(error(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            "the request body could not be read (connection error or bad chunked encoding)",
            None,
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
