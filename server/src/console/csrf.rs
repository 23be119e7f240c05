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

    fn h(pairs: &[Header]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    /// The request's headers, the request target's authority, the scheme the console is served
    /// with, and whether a POST may proceed.
    type Case = (&'static [Header], Option<&'static str>, &'static str, bool);
    type Header = (&'static str, &'static str);

    const ORIGIN: Header = ("origin", "http://a:1");
    const HOST: Header = ("host", "a:1");
    const H2_ORIGIN: Header = ("origin", "https://a:1");

    const CASES: &[Case] = &[
        (&[], None, "http", false),
        (&[("sec-fetch-site", "same-origin")], None, "http", true),
        (&[("sec-fetch-site", "none")], None, "http", true),
        (&[("sec-fetch-site", "same-site")], None, "http", false),
        // Sec-Fetch-Site decides when present, whatever Origin says.
        (
            &[("sec-fetch-site", "cross-site"), ORIGIN, HOST],
            None,
            "http",
            false,
        ),
        (&[ORIGIN, HOST], None, "http", true),
        (&[ORIGIN, HOST], None, "https", false),
        (&[("origin", "http://evil"), HOST], None, "http", false),
        (&[("origin", "null"), HOST], None, "http", false),
        // HTTP/2: no Host header, the authority of the request target instead.
        (&[H2_ORIGIN], Some("a:1"), "https", true),
        (&[H2_ORIGIN], Some("b:1"), "https", false),
        (&[H2_ORIGIN], None, "https", false),
    ];

    #[test]
    fn the_rule() {
        assert!(same_origin(&Method::GET, &h(&[]), None, "http"));
        for &(headers, authority, scheme, allowed) in CASES {
            assert_eq!(
                same_origin(&Method::POST, &h(headers), authority, scheme),
                allowed,
                "{headers:?} {authority:?} {scheme}"
            );
        }
    }
}
