use super::*;

fn window(
    kind: WindowKind,
    schedule: &str,
    duration: &str,
    zone: Option<&str>,
) -> DeploymentWindow {
    DeploymentWindow {
        kind,
        schedule: schedule.into(),
        duration: duration.parse().expect("a duration"),
        time_zone: zone.map(Into::into),
    }
}

fn allow(schedule: &str, duration: &str) -> DeploymentWindow {
    window(WindowKind::Allow, schedule, duration, None)
}

fn deny(schedule: &str, duration: &str) -> DeploymentWindow {
    window(WindowKind::Deny, schedule, duration, None)
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

fn opens(g: &Gate) -> Option<String> {
    match g {
        Gate::Closed { opens_at, .. } => opens_at.map(|t| t.to_string()),
        Gate::Open => panic!("open: {g:?}"),
    }
}

#[test]
fn no_windows_and_no_freeze_is_always_open() {
    assert_eq!(gate(&[], None, at("2026-12-04T18:00:00Z")), Gate::Open);
}

#[test]
fn a_freeze_closes_everything_with_its_reason_and_no_end() {
    let g = gate(
        &[allow("@daily", "24h")],
        Some("year-end freeze"),
        at("2026-12-04T18:00:00Z"),
    );
    assert_eq!(
        g,
        Gate::Closed {
            reason: "the namespace is frozen: year-end freeze".into(),
            opens_at: None
        }
    );
    assert_eq!(
        g.message().as_deref(),
        Some("the namespace is frozen: year-end freeze")
    );
}

#[test]
fn a_deny_window_closes_from_its_start_until_its_end() {
    // Friday 18:00 for 62 h: the weekend, until Monday 08:00.
    let w = [deny("0 18 * * FRI", "62h")];
    assert!(gate(&w, None, at("2026-12-04T17:59:59Z")).is_open());
    let g = gate(&w, None, at("2026-12-04T18:00:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-07T08:00:00Z"));
    assert_eq!(
        g.message().as_deref(),
        Some(
            "deny window \"0 18 * * FRI\" (62h, UTC) is open; \
             the next window opens at 2026-12-07T08:00:00Z"
        )
    );
    assert!(!gate(&w, None, at("2026-12-07T07:59:59Z")).is_open());
    assert!(gate(&w, None, at("2026-12-07T08:00:00Z")).is_open());
}

#[test]
fn allow_windows_open_only_while_one_is_open() {
    // Weekdays 09:00-17:00.
    let w = [allow("0 9 * * MON-FRI", "8h")];
    // Friday 2026-12-04 16:00: open; 17:00: closed until Monday 09:00.
    assert!(gate(&w, None, at("2026-12-04T16:00:00Z")).is_open());
    let g = gate(&w, None, at("2026-12-04T17:00:00Z"));
    assert!(matches!(&g, Gate::Closed { reason, .. } if reason == "outside every allow window"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-07T09:00:00Z"));
    // Before the first start of the day.
    let g = gate(&w, None, at("2026-12-07T06:00:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-07T09:00:00Z"));
}

#[test]
fn any_of_several_allow_windows_opens() {
    let w = [allow("0 9 * * *", "1h"), allow("0 14 * * *", "1h")];
    assert!(gate(&w, None, at("2026-12-04T14:30:00Z")).is_open());
    let g = gate(&w, None, at("2026-12-04T10:30:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-04T14:00:00Z"));
}

#[test]
fn deny_wins_over_allow_and_the_opening_skips_both_edges() {
    // Allowed every day 09:00-17:00, but denied 12:00-15:00 on 2026-12-24.
    let w = [allow("0 9 * * *", "8h"), deny("0 12 24 12 *", "3h")];
    assert!(gate(&w, None, at("2026-12-24T11:00:00Z")).is_open());
    let g = gate(&w, None, at("2026-12-24T12:00:00Z"));
    assert!(matches!(&g, Gate::Closed { reason, .. } if reason.starts_with("deny window")));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-24T15:00:00Z"));
    // A deny that ends after the allow closes: the next allow start is the opening.
    let w = [allow("0 9 * * *", "8h"), deny("0 16 * * *", "3h")];
    let g = gate(&w, None, at("2026-12-04T16:30:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-05T09:00:00Z"));
}

#[test]
fn overlapping_deny_windows_open_when_the_last_ends() {
    let w = [deny("0 10 * * *", "2h"), deny("0 11 * * *", "3h")];
    let g = gate(&w, None, at("2026-12-04T10:30:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-04T14:00:00Z"));
}

#[test]
fn windows_follow_their_time_zone() {
    // Weekdays 09:00-17:00 in Berlin: 08:00-16:00 UTC in December.
    let w = [window(
        WindowKind::Allow,
        "0 9 * * 1-5",
        "8h",
        Some("Europe/Berlin"),
    )];
    assert!(!gate(&w, None, at("2026-12-04T07:59:00Z")).is_open());
    assert!(gate(&w, None, at("2026-12-04T08:00:00Z")).is_open());
    assert!(!gate(&w, None, at("2026-12-04T16:00:00Z")).is_open());
    let g = gate(&w, None, at("2026-12-04T16:00:00Z"));
    assert_eq!(opens(&g).as_deref(), Some("2026-12-07T08:00:00Z"));
}

#[test]
fn a_window_that_never_ends_has_no_opening() {
    // Denied every minute, for an hour: always closed, and the search gives up.
    let g = gate(&[deny("* * * * *", "1h")], None, at("2026-12-04T10:30:00Z"));
    assert_eq!(opens(&g), None);
    // Allowed only on a date that never comes.
    let g = gate(
        &[allow("0 0 30 2 *", "1h")],
        None,
        at("2026-12-04T10:30:00Z"),
    );
    assert_eq!(opens(&g), None);
}

#[test]
fn invalid_windows_are_named_and_never_open() {
    let bad = [
        allow("0 9 * *", "1h"),
        allow("0 9 * * *", "30s"),
        allow("0 9 * * *", "745h"),
        window(WindowKind::Deny, "0 9 * * *", "1h", Some("Mars/Olympus")),
    ];
    let found = problems(&bad, "spec.windows");
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(found[0].0, "spec.windows[0]");
    assert!(found[0].1.starts_with("invalid schedule"), "{found:?}");
    assert_eq!(found[1].1, "duration 30s must be between 1m and 744h");
    assert!(found[2].1.contains("duration 745h"));
    assert_eq!(found[3].0, "spec.windows[3]");
    assert_eq!(found[3].1, "unknown time zone \"Mars/Olympus\"");
    for w in bad {
        let g = gate(&[w], None, at("2026-12-04T10:00:00Z"));
        assert!(
            matches!(&g, Gate::Closed { reason, opens_at: None } if reason.starts_with("invalid window")),
            "{g:?}"
        );
    }
    let many = vec![allow("@daily", "1h"); MAX_WINDOWS + 1];
    assert_eq!(problems(&many, "spec.windows").len(), 1);
    assert!(problems(&[allow("@daily", "1h")], "spec.windows").is_empty());
}
