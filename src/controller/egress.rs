//! Where the operator may send requests on a Rollout author's behalf: the hosts of metric
//! providers and webhooks. Anyone who may create a Rollout names these URLs, and the
//! operator sends them credentials from the author's Secrets, so the platform team decides
//! which hosts are reachable, not the author.

use std::fmt;

/// The setting that widens the allowlist, as messages name it.
pub const SETTING: &str = "--allowed-hosts (CUTOVER_ALLOWED_HOSTS, chart value allowedHosts)";

/// Why a URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The URL could not be read, or has no host.
    #[error("{what} is not an http:// or https:// URL with a host")]
    NotAUrl {
        /// What the URL is for, e.g. `metric "errors"`.
        what: String,
    },
    /// The host is not on the allowlist.
    #[error(
        "{what} names host {host:?}, which the operator may not send requests to: allowed are {allowed}; add the host to {SETTING}"
    )]
    NotAllowed {
        /// What the URL is for.
        what: String,
        /// The refused host.
        host: String,
        /// The allowlist as configured.
        allowed: Allowlist,
    },
}

/// One entry: a host name or address, `*.suffix` for the subdomains of a domain, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Any,
    Exact(String),
    Subdomains(String),
}

/// The hosts the operator may send requests to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return f.write_str("no hosts");
        }
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|e| match e {
                Entry::Any => "*".to_string(),
                Entry::Exact(h) => h.clone(),
                Entry::Subdomains(d) => format!("*.{d}"),
            })
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// Lower-cases a host and drops a trailing dot and IPv6 brackets, so spellings of one
/// host compare equal.
fn normalize(host: &str) -> String {
    host.trim()
        .trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The host of an http(s) URL, normalized.
pub fn host_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.trim().parse().ok()?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return None,
    }
    let host = normalize(uri.host()?);
    (!host.is_empty()).then_some(host)
}

/// Checks one entry as a flag value: a host, `*.domain` or `*`.
pub fn parse_entry(s: &str) -> Result<String, String> {
    let t = s.trim();
    let name = t.strip_prefix("*.").unwrap_or(t);
    let valid = t == "*"
        || (!name.is_empty()
            && !name.contains('*')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')));
    if valid {
        Ok(t.to_string())
    } else {
        Err(format!(
            "{s:?} is not a host, *.domain or *: give host names, not URLs"
        ))
    }
}

impl Allowlist {
    /// The configured entries plus the host of `--prometheus-url`, which is always allowed.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        prometheus_url: Option<&str>,
    ) -> Self {
        let mut list = Self::default();
        for e in entries {
            let e = e.trim();
            let entry = if e == "*" {
                Entry::Any
            } else if let Some(domain) = e.strip_prefix("*.") {
                Entry::Subdomains(normalize(domain))
            } else {
                Entry::Exact(normalize(e))
            };
            if !list.entries.contains(&entry) {
                list.entries.push(entry);
            }
        }
        if let Some(host) = prometheus_url.and_then(host_of) {
            let entry = Entry::Exact(host);
            if !list.entries.contains(&entry) {
                list.entries.push(entry);
            }
        }
        list
    }

    /// Whether requests may go to `host`.
    pub fn allows(&self, host: &str) -> bool {
        let host = normalize(host);
        self.entries.iter().any(|e| match e {
            Entry::Any => true,
            Entry::Exact(h) => *h == host,
            Entry::Subdomains(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        })
    }

    /// Checks the URL `what` names.
    pub fn check(&self, what: &str, url: &str) -> Result<(), EgressError> {
        let Some(host) = host_of(url) else {
            return Err(EgressError::NotAUrl {
                what: what.to_string(),
            });
        };
        if self.allows(&host) {
            Ok(())
        } else {
            Err(EgressError::NotAllowed {
                what: what.to_string(),
                host,
                allowed: self.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_the_prometheus_url_host_is_allowed() {
        let list = Allowlist::new([], Some("http://prometheus.monitoring.svc:9090/prom"));
        assert!(list.allows("prometheus.monitoring.svc"));
        assert!(list.allows("Prometheus.Monitoring.SVC."));
        for refused in [
            "evil.example",
            "10.0.0.1",
            "prometheus.monitoring.svc.evil",
            "localhost",
        ] {
            assert!(!list.allows(refused), "{refused}");
        }
        assert!(!Allowlist::new([], None).allows("anything"));
    }

    #[test]
    fn entries_name_hosts_subdomains_or_everything() {
        let list = Allowlist::new(
            ["hooks.slack.com", "*.internal.example", "10.0.0.5", "[::1]"],
            None,
        );
        assert!(list.allows("hooks.slack.com"));
        assert!(!list.allows("slack.com"));
        assert!(list.allows("thanos.internal.example"));
        assert!(list.allows("a.b.internal.example"));
        assert!(
            !list.allows("internal.example"),
            "a wildcard names subdomains only"
        );
        assert!(!list.allows("evilinternal.example"));
        assert!(list.allows("10.0.0.5"));
        assert!(list.allows("::1"));
        assert!(Allowlist::new(["*"], None).allows("anything.at.all"));
    }

    #[test]
    fn urls_are_checked_by_their_host_whatever_the_port_path_or_credentials() {
        let list = Allowlist::new(["prom.example"], None);
        assert_eq!(
            list.check("metric", "https://prom.example:8443/api"),
            Ok(())
        );
        assert_eq!(list.check("metric", "http://user:pw@prom.example/"), Ok(()));
        let refused = list
            .check("metric \"errors\"", "http://prom.example.attacker.net/")
            .unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("\"prom.example.attacker.net\""),
            "{message}"
        );
        assert!(message.contains("--allowed-hosts"), "{message}");
        assert!(message.contains("allowed are prom.example"), "{message}");
        for bad in [
            "file:///etc/passwd",
            "gopher://prom.example",
            "prom.example",
            "http://",
            "",
        ] {
            assert!(
                matches!(list.check("metric", bad), Err(EgressError::NotAUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn flag_values_are_hosts_not_urls() {
        for good in [
            "prom.example",
            "*.svc.cluster.local",
            "*",
            "10.0.0.1",
            "[::1]",
        ] {
            assert!(parse_entry(good).is_ok(), "{good}");
        }
        for bad in [
            "http://prom.example",
            "prom.example/path",
            "*prom",
            "a*.b",
            "",
            "*.",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad}");
        }
    }
}
