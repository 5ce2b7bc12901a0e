//! Cron schedules of deployment windows: the five fields (minute, hour, day of month,
//! month, day of week) and the `@daily`-style shorthands, matched in a time zone.

use jiff::{
    Timestamp, ToSpan,
    civil::{Date, DateTime, Time},
    tz::TimeZone,
};

/// How far ahead a start is looked for: a schedule matching only 29 February still
/// matches within eight years.
const HORIZON_DAYS: i32 = 8 * 366;

/// A schedule that does not parse, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {schedule:?}: {reason}")]
pub struct CronError {
    /// The schedule as written (cut to 64 characters).
    pub schedule: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed schedule: the set of values each field accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: cron then matches a day either accepts.
    days_either: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    // 7 is Sunday too, as in Vixie cron.
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Field {
    fn value(&self, text: &str) -> Result<u32, String> {
        let upper = text.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(self.min + i as u32);
        }
        let v: u32 = text
            .parse()
            .map_err(|_| format!("{} {text:?} is not a number", self.name))?;
        if v < self.min || v > self.max {
            return Err(format!(
                "{} {v} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// The bit set of the values one field accepts; whether it was `*`.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        let mut star = false;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{} step {s:?} is not a positive number", self.name)
                    })?;
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                star |= step == 1;
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{} range {range:?} runs backwards", self.name));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `5/15` means from 5 to the end, every 15.
                (a, if step > 1 { self.max } else { a })
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, star))
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(schedule: &str) -> Result<Self, CronError> {
        let err = |reason: String| CronError {
            schedule: schedule.chars().take(64).collect(),
            reason,
        };
        let expanded = match schedule.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(err(format!("unknown shorthand {other:?}")));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let (minutes, _) = MINUTE.parse(minute).map_err(err)?;
        let (hours, _) = HOUR.parse(hour).map_err(err)?;
        let (days, days_star) = DAY.parse(day).map_err(err)?;
        let (months, _) = MONTH.parse(month).map_err(err)?;
        let (mut weekdays, weekdays_star) = WEEKDAY.parse(weekday).map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_either: !days_star && !weekdays_star,
        })
    }
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let by_day = self.days & (1 << date.day()) != 0;
        let by_weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.days_either {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }

    /// The first start at or after `from`, in `tz`; `None` when none falls within eight
    /// years (`0 0 30 2 *`). A start in a daylight-saving gap happens when the clocks
    /// have moved on (02:30 becomes 03:30); in a repeated hour, at its first occurrence.
    pub fn next(&self, from: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = from.to_zoned(tz.clone()).datetime();
        let mut date = local.date();
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        let time = Time::new(hour as i8, minute as i8, 0, 0).ok()?;
                        let civil = DateTime::from_parts(date, time);
                        let Ok(zoned) = tz.to_ambiguous_zoned(civil).compatible() else {
                            continue;
                        };
                        let at = zoned.timestamp();
                        if at >= from {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }

    /// The last start at or before `at`, in `tz`; `None` when none fell within eight years.
    pub fn prev(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = at.to_zoned(tz.clone()).datetime();
        let mut date = local.date();
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(date) {
                for hour in (0..24).rev().filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60).rev().filter(|m| self.minutes & (1u64 << m) != 0) {
                        let time = Time::new(hour as i8, minute as i8, 0, 0).ok()?;
                        let civil = DateTime::from_parts(date, time);
                        let Ok(zoned) = tz.to_ambiguous_zoned(civil).compatible() else {
                            continue;
                        };
                        let start = zoned.timestamp();
                        if start <= at {
                            return Some(start);
                        }
                    }
                }
            }
            date = date.checked_sub(1.day()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> Cron {
        s.parse().expect("a schedule")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn next(schedule: &str, from: &str, zone: &str) -> Option<String> {
        let tz = TimeZone::get(zone).expect("a zone");
        cron(schedule).next(at(from), &tz).map(|t| t.to_string())
    }

    #[test]
    fn every_field_form_parses_to_its_values() {
        let c = cron("*/15 9-17 1,15 JAN-mar mon-fri");
        assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(c.hours, (9..=17).map(|h| 1 << h).sum::<u32>());
        assert_eq!(c.days, 1 << 1 | 1 << 15);
        assert_eq!(c.months, 1 << 1 | 1 << 2 | 1 << 3);
        assert_eq!(c.weekdays, (1..=5).map(|d| 1 << d).sum::<u8>());
        assert!(c.days_either);
        assert_eq!(cron("5/20 * * * *").minutes, 1 << 5 | 1 << 25 | 1 << 45);
        assert_eq!(cron("0 0 * * 7").weekdays, 1, "7 is Sunday");
        assert_eq!(cron("@daily"), cron("0 0 * * *"));
        assert_eq!(cron("@weekly"), cron("0 0 * * 0"));
        assert!(!cron("0 0 * * 1").days_either);
    }

    #[test]
    fn malformed_schedules_say_what_is_wrong() {
        for (schedule, reason) in [
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("* 24 * * *", "hour 24 is outside 0-23"),
            ("* * 0 * *", "day of month 0 is outside 1-31"),
            ("* * * 13 *", "month 13 is outside 1-12"),
            ("* * * * 8", "day of week 8 is outside 0-7"),
            ("*/0 * * * *", "step \"0\" is not a positive number"),
            ("5-1 * * * *", "runs backwards"),
            ("x * * * *", "minute \"x\" is not a number"),
            ("@sometimes", "unknown shorthand"),
            ("", "expected 5 fields"),
        ] {
            let e = schedule.parse::<Cron>().expect_err(schedule);
            assert!(e.to_string().contains(reason), "{schedule}: {e}");
        }
    }

    #[test]
    fn next_start_is_at_or_after_the_instant() {
        assert_eq!(
            next("0 9 * * *", "2026-12-01T08:00:00Z", "UTC").as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            next("0 9 * * *", "2026-12-01T09:00:00Z", "UTC").as_deref(),
            Some("2026-12-01T09:00:00Z"),
            "a start exactly now is now"
        );
        assert_eq!(
            next("0 9 * * *", "2026-12-01T09:00:01Z", "UTC").as_deref(),
            Some("2026-12-02T09:00:00Z")
        );
        // 2026-12-04 is a Friday.
        assert_eq!(
            next("0 18 * * FRI", "2026-12-01T00:00:00Z", "UTC").as_deref(),
            Some("2026-12-04T18:00:00Z")
        );
        assert_eq!(
            next("0 0 1 1 *", "2026-12-01T00:00:00Z", "UTC").as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn day_of_month_and_weekday_match_either_when_both_are_given() {
        // The 15th, or any Monday: Monday 2026-12-07 comes first.
        assert_eq!(
            next("0 0 15 * MON", "2026-12-01T00:00:00Z", "UTC").as_deref(),
            Some("2026-12-07T00:00:00Z")
        );
        // Only the weekday restricted: Mondays in any day of the month.
        assert_eq!(
            next("0 0 * * MON", "2026-12-08T00:00:00Z", "UTC").as_deref(),
            Some("2026-12-14T00:00:00Z")
        );
    }

    #[test]
    fn starts_are_local_to_the_time_zone() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            next("0 9 * * *", "2026-12-01T00:00:00Z", "Europe/Berlin").as_deref(),
            Some("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            next("0 9 * * *", "2026-07-01T00:00:00Z", "Europe/Berlin").as_deref(),
            Some("2026-07-01T07:00:00Z")
        );
        assert_eq!(
            next("0 9 * * *", "2026-12-01T00:00:00Z", "America/New_York").as_deref(),
            Some("2026-12-01T14:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_gaps_and_folds_start_once() {
        // Europe/Berlin springs forward on 2026-03-29 at 02:00 to 03:00: 02:30 does not
        // exist that day and starts at 03:30 local (01:30 UTC).
        assert_eq!(
            next("30 2 * * *", "2026-03-29T00:00:00Z", "Europe/Berlin").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
        // It falls back on 2026-10-25 at 03:00 to 02:00: 02:30 happens twice and starts at
        // its first (00:30 UTC), and the next start is the day after.
        assert_eq!(
            next("30 2 * * *", "2026-10-25T00:00:00Z", "Europe/Berlin").as_deref(),
            Some("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            next("30 2 * * *", "2026-10-25T00:31:00Z", "Europe/Berlin").as_deref(),
            Some("2026-10-26T01:30:00Z")
        );
    }

    #[test]
    fn previous_start_is_at_or_before_the_instant() {
        let tz = TimeZone::get("Europe/Berlin").expect("a zone");
        let c = cron("0 18 * * FRI");
        let prev = |s: &str| c.prev(at(s), &tz).map(|t| t.to_string());
        // Friday 2026-12-04 18:00 in Berlin is 17:00 UTC.
        assert_eq!(
            prev("2026-12-07T08:00:00Z").as_deref(),
            Some("2026-12-04T17:00:00Z")
        );
        assert_eq!(
            prev("2026-12-04T17:00:00Z").as_deref(),
            Some("2026-12-04T17:00:00Z")
        );
        assert_eq!(
            prev("2026-12-04T16:59:59Z").as_deref(),
            Some("2026-11-27T17:00:00Z")
        );
        assert_eq!(
            cron("0 0 30 2 *").prev(at("2026-03-01T00:00:00Z"), &tz),
            None
        );
    }

    #[test]
    fn rare_and_impossible_dates() {
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z", "UTC").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
        assert_eq!(next("0 0 30 2 *", "2026-03-01T00:00:00Z", "UTC"), None);
        assert_eq!(next("0 0 31 4 *", "2026-03-01T00:00:00Z", "UTC"), None);
    }
}
