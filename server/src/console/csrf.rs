//! Cross-site request refusal for the console: the rule of Go's `CrossOriginProtection`, made
//! stricter. Safe methods pass; any other request must come from the console's own origin, as
//! the browser reports it: `Sec-Fetch-Site: same-origin` (or `none`: typed by the user), or,
//! from browsers that do not send that header, an `Origin` equal to this server's origin
//! (scheme + Host). A request with neither header is refused too: every browser sends one of
//! them on a POST, and a non-browser client can add `Origin` itself.

use hyper::Method;
use hyper::header::{self, HeaderMap};

/// Whether an unsafe request may proceed. `scheme` is how the console is served (`https` behind
/// a TLS proxy when `--console-secure-cookies` says so).
/// `authority` is the request target's authority: what an HTTP/2 request carries instead of a
/// `Host` header (`:authority`); the `Host` header wins when both are present.
pub fn same_origin(
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    scheme: &str,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or(authority),
    ) else {
        return false;
    };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn the_rule() {
        let post = Method::POST;
        assert!(same_origin(&Method::GET, &h(&[]), None, "http"));
        assert!(!same_origin(&post, &h(&[]), None, "http"));
        assert!(same_origin(
            &post,
            &h(&[("sec-fetch-site", "same-origin")]),
            None,
            "http"
        ));
        assert!(same_origin(
            &post,
            &h(&[("sec-fetch-site", "none")]),
            None,
            "http"
        ));
        assert!(!same_origin(
            &post,
            &h(&[("sec-fetch-site", "same-site")]),
            None,
            "http"
        ));
        // Sec-Fetch-Site decides when present, whatever Origin says.
        assert!(!same_origin(
            &post,
            &h(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://a:1"),
                ("host", "a:1")
            ]),
            None,
            "http"
        ));
        assert!(same_origin(
            &post,
            &h(&[("origin", "http://a:1"), ("host", "a:1")]),
            None,
            "http"
        ));
        assert!(!same_origin(
            &post,
            &h(&[("origin", "http://a:1"), ("host", "a:1")]),
            None,
            "https"
        ));
        assert!(!same_origin(
            &post,
            &h(&[("origin", "http://evil"), ("host", "a:1")]),
            None,
            "http"
        ));
        assert!(!same_origin(
            &post,
            &h(&[("origin", "null"), ("host", "a:1")]),
            None,
            "http"
        ));
        // HTTP/2: no Host header, the authority of the request target instead.
        let origin = h(&[("origin", "https://a:1")]);
        assert!(same_origin(&post, &origin, Some("a:1"), "https"));
        assert!(!same_origin(&post, &origin, Some("b:1"), "https"));
        assert!(!same_origin(&post, &origin, None, "https"));
    }
}
