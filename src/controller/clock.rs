//! The clock controllers read `now` from, injectable so that tests and the simulator run
//! controllers under a virtual (tokio paused) clock.

use jiff::{SignedDuration, Timestamp};

/// Source of the current time for plans and status timestamps.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The machine's wall clock.
    System,
    /// Wall time derived from tokio's clock, so `tokio::time::pause` and `advance` move it.
    Tokio {
        /// Wall time at `origin`.
        base: Timestamp,
        /// tokio instant that corresponds to `base`.
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that starts at `base` and advances with tokio's (possibly paused) clock.
    pub fn tokio_at(base: Timestamp) -> Self {
        Self::Tokio {
            base,
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp::now(),
            Self::Tokio { base, origin } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(*origin);
                let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
                base.checked_add(elapsed).unwrap_or(Timestamp::MAX)
            }
        }
    }

    /// Time left until `due`, zero if it has passed.
    pub fn until(&self, due: Timestamp) -> std::time::Duration {
        let left = due.duration_since(self.now());
        std::time::Duration::try_from(left).unwrap_or(std::time::Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let base = Timestamp::from_second(1_700_000_000).unwrap();
        let clock = Clock::tokio_at(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + SignedDuration::from_secs(90));
        let due = base + SignedDuration::from_secs(100);
        assert_eq!(clock.until(due), std::time::Duration::from_secs(10));
        assert_eq!(clock.until(base), std::time::Duration::ZERO);
    }
}
