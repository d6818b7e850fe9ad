//! Per-consumer quotas: a token bucket per (API, token) in this process.

use super::*;

/// The buckets of this lookup process.
#[derive(Default)]
pub(super) struct Quotas {
    buckets: std::sync::Mutex<HashMap<(String, String), Bucket>>,
}

struct Bucket {
    /// Requests that may go now (up to the burst).
    available: f64,
    at: Instant,
}

impl Quotas {
    /// Takes one request from the bucket of (`api`, `who`); `None` if it may go, else how long
    /// until it could.
    pub(super) fn take(
        &self,
        api: &str,
        who: &str,
        per_second: u32,
        burst: u32,
    ) -> Option<Duration> {
        let (rate, capacity) = (f64::from(per_second.max(1)), f64::from(burst.max(1)));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry((api.to_string(), who.to_string()))
            .or_insert(Bucket {
                available: capacity,
                at: now,
            });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.available = (bucket.available + refilled).min(capacity);
        bucket.at = now;
        if bucket.available >= 1.0 {
            bucket.available -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.available) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_its_rate() {
        let q = Quotas::default();
        let passed = (0..50)
            .filter(|_| q.take("a", "t", 10, 5).is_none())
            .count();
        assert_eq!(passed, 5, "the burst, at once");
        let wait = q.take("a", "t", 10, 5).expect("over the burst");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            q.take("a", "other", 10, 5).is_none(),
            "another token has its own bucket"
        );
        std::thread::sleep(Duration::from_millis(250));
        let passed = (0..50)
            .filter(|_| q.take("a", "t", 10, 5).is_none())
            .count();
        assert!(
            (2..=3).contains(&passed),
            "about 2.5 refilled in 250 ms: {passed}"
        );
    }
}
