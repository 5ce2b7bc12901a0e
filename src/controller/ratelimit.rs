//! Client-side rate limiting of API requests (kube has none of its own).

use std::time::Duration;

/// Builds a tower layer allowing `burst` requests per window of `burst / qps` seconds, so
/// the sustained rate is `qps` and short bursts up to `burst` go through at once.
pub fn layer(qps: f64, burst: u32) -> tower::limit::RateLimitLayer {
    let burst = burst.max(1);
    let qps = if qps.is_finite() && qps > 0.0 {
        qps
    } else {
        1.0
    };
    let window = Duration::from_secs_f64((f64::from(burst) / qps).max(0.001));
    tower::limit::RateLimitLayer::new(u64::from(burst), window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service, ServiceBuilder, ServiceExt};

    #[tokio::test(start_paused = true)]
    async fn bursts_go_through_then_requests_wait_for_the_window() {
        let mut svc = ServiceBuilder::new()
            .layer(layer(10.0, 5))
            .service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>(()) });
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            svc.ready().await.unwrap().call(()).await.unwrap();
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a burst of 5 passes at once"
        );
        svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(500),
            "the 6th waits for the next window"
        );
    }
}
