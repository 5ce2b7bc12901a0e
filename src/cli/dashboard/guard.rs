//! Who may use the dashboard: the per-start token every request carries in its URL, the
//! Origin a state-changing request must come from, and the headers every answer carries.

use std::net::SocketAddr;

/// Header a state-changing request must carry: a page of another origin cannot set it
/// without a CORS preflight, which the dashboard never grants.
pub const ACTION_HEADER: &str = "x-cutover-dashboard";

/// A fresh token of 128 random bits, in hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `token` parameter of a query string, if any.
pub fn token_of(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Whether `given` is `expected`, compared in time that does not depend on where they differ.
pub fn token_matches(given: Option<&str>, expected: &str) -> bool {
    let Some(given) = given else { return false };
    if given.len() != expected.len() {
        return false;
    }
    given
        .bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Whether a state-changing request may proceed: it names the page's own origin, the Host
/// it was sent to is one the dashboard answers as, and it carries [`ACTION_HEADER`].
pub fn same_origin(
    origin: Option<&str>,
    host: Option<&str>,
    has_action_header: bool,
    bound: SocketAddr,
) -> bool {
    let (Some(origin), Some(host)) = (origin, host) else {
        return false;
    };
    has_action_header && host_allowed(host, bound) && origin == format!("http://{host}")
}

/// Whether `host` (a Host header) names the dashboard: its own address, or `localhost` when
/// it listens on loopback; any host when it listens on every address (the token decides).
pub fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    if bound.ip().is_unspecified() {
        return true;
    }
    let port = bound.port();
    host == bound.to_string() || (bound.ip().is_loopback() && host == format!("localhost:{port}"))
}

/// The URL a person opens: loopback when the dashboard listens on every address.
pub fn url(bound: SocketAddr, token: &str) -> String {
    let mut shown = bound;
    if bound.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{shown}/?token={token}")
}

/// Headers every answer carries: nothing is cached, no page may frame it, and the URL (with
/// its token) is never sent as a Referer.
pub const COMMON_HEADERS: [(&str, &str); 4] = [
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
];

/// The page's Content-Security-Policy: its own inline script (by nonce) and nothing fetched
/// from anywhere but the dashboard.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b, "each start has its own token");
    }

    #[test]
    fn the_token_must_match_exactly() {
        let t = "0123456789abcdef0123456789abcdef";
        assert!(token_matches(Some(t), t));
        assert!(!token_matches(None, t));
        assert!(!token_matches(Some(""), t));
        assert!(
            !token_matches(Some(&t[..31]), t),
            "a prefix is not the token"
        );
        assert!(!token_matches(Some("1123456789abcdef0123456789abcdef"), t));
        assert!(!token_matches(Some("0123456789abcdef0123456789abcdee"), t));
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(token_of(Some("token=abc&x=1")).as_deref(), Some("abc"));
        assert_eq!(token_of(Some("x=1&token=a%20b")).as_deref(), Some("a b"));
        assert_eq!(token_of(Some("tokens=abc")), None);
        assert_eq!(token_of(None), None);
    }

    #[test]
    fn actions_need_the_pages_own_origin_and_header() {
        let bound = addr("127.0.0.1:3100");
        let ok = |o: Option<&str>, h: Option<&str>, hdr| same_origin(o, h, hdr, bound);
        assert!(ok(
            Some("http://127.0.0.1:3100"),
            Some("127.0.0.1:3100"),
            true
        ));
        assert!(ok(
            Some("http://localhost:3100"),
            Some("localhost:3100"),
            true
        ));
        assert!(!ok(
            Some("http://127.0.0.1:3100"),
            Some("127.0.0.1:3100"),
            false
        ));
        assert!(!ok(
            Some("http://evil.example"),
            Some("127.0.0.1:3100"),
            true
        ));
        assert!(!ok(Some("null"), Some("127.0.0.1:3100"), true));
        assert!(
            !ok(None, Some("127.0.0.1:3100"), true),
            "no Origin, no action"
        );
        assert!(!ok(Some("http://127.0.0.1:3100"), None, true));
        // DNS rebinding: a name the attacker controls that resolves to loopback.
        assert!(!ok(
            Some("http://evil.example:3100"),
            Some("evil.example:3100"),
            true
        ));
        assert!(!ok(
            Some("https://127.0.0.1:3100"),
            Some("127.0.0.1:3100"),
            true
        ));
        assert!(!ok(
            Some("http://127.0.0.1:3101"),
            Some("127.0.0.1:3100"),
            true
        ));
    }

    #[test]
    fn on_every_address_the_host_is_whatever_the_browser_used() {
        let bound = addr("0.0.0.0:3100");
        assert!(same_origin(
            Some("http://build-7.internal:3100"),
            Some("build-7.internal:3100"),
            true,
            bound
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("build-7.internal:3100"),
            true,
            bound
        ));
        let specific = addr("10.0.0.5:3100");
        assert!(host_allowed("10.0.0.5:3100", specific));
        assert!(!host_allowed("localhost:3100", specific), "not loopback");
    }

    #[test]
    fn the_url_opens_on_loopback() {
        assert_eq!(
            url(addr("0.0.0.0:3100"), "t"),
            "http://127.0.0.1:3100/?token=t"
        );
        assert_eq!(
            url(addr("127.0.0.1:41000"), "t"),
            "http://127.0.0.1:41000/?token=t"
        );
        assert_eq!(url(addr("[::1]:3100"), "t"), "http://[::1]:3100/?token=t");
    }

    #[test]
    fn the_policy_allows_only_the_nonced_script() {
        let csp = content_security_policy("n0nce");
        assert!(csp.contains("script-src 'nonce-n0nce'"));
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-eval"));
    }
}
