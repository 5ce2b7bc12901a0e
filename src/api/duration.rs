//! Durations written the Kubernetes way (`30s`, `1m30s`, `2h`).

use std::{borrow::Cow, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Pattern the API server checks: one or more `<number><unit>` groups, no sign.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// A non-negative duration such as `30s`, `5m` or `1h30m`.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// The duration as a standard library value.
    pub const fn as_std(&self) -> std::time::Duration {
        self.0
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

/// A duration string that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: expected e.g. 30s, 5m, 1h30m, 250ms")]
pub struct ParseDurationError {
    input: String,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError {
            input: s.chars().take(64).collect(),
        };
        // Parsed here rather than by kube's Go-style parser, which panics on a sign inside
        // the string (`1m-5m`) and on values too large for a Duration.
        if s.is_empty() {
            return Err(err());
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(err)?;
            let (number, tail) = rest.split_at(number_len);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let whole_or_fraction = number.split('.').collect::<Vec<_>>();
            let valid_number = match whole_or_fraction.as_slice() {
                [whole] => !whole.is_empty(),
                [whole, fraction] => !whole.is_empty() && !fraction.is_empty(),
                _ => false,
            };
            let value: f64 = number.parse().map_err(|_| err())?;
            let secs = match unit {
                "ms" => value / 1000.0,
                "s" => value,
                "m" => value * 60.0,
                "h" => value * 3600.0,
                _ => return Err(err()),
            };
            if !valid_number {
                return Err(err());
            }
            let part = std::time::Duration::try_from_secs_f64(secs).map_err(|_| err())?;
            total = total.checked_add(part).ok_or_else(err)?;
            rest = tail;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let (h, rem) = (total_ms / 3_600_000, total_ms % 3_600_000);
        let (m, rem) = (rem / 60_000, rem % 60_000);
        let (s, ms) = (rem / 1000, rem % 1000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_style_durations() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap().as_std(),
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn rejects_negative_unitless_and_exotic_units() {
        for bad in ["", "-5s", "5", "5d", "10us", "1ns", "abc", "+3m"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn displays_in_canonical_form_and_round_trips() {
        for (input, shown) in [
            ("90s", "1m30s"),
            ("1h", "1h"),
            ("0s", "0s"),
            ("1500ms", "1s500ms"),
        ] {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn values_past_what_a_duration_holds_are_an_error_not_a_panic() {
        for s in [
            "99999999999999999999999h",
            "18446744073709551615s18446744073709551615s",
            &format!("{}h", "9".repeat(400)),
        ] {
            assert!(s.parse::<Duration>().is_err(), "{s}");
        }
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap().as_secs(),
            5400,
            "groups add up"
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap().as_std().as_millis(),
            250
        );
    }

    #[test]
    fn schema_pattern_agrees_with_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for s in ["30s", "1h30m", "250ms", "1.5h"] {
            assert!(re.is_match(s) && s.parse::<Duration>().is_ok(), "{s}");
        }
        for s in [
            "-5s", "5", "5d", "10us", "1m-5m", "+5s", "1..5s", ".5s", "5.s", "s", "1e3s",
        ] {
            assert!(!re.is_match(s) && s.parse::<Duration>().is_err(), "{s}");
        }
    }
}
