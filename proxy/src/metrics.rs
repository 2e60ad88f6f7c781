//! Prometheus text metrics: requests by method and status, bytes in and out, and
//! a latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Methods counted by name.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "COPY", "PATCH", "TRACE",
];

#[derive(Default)]
struct Inner {
    /// By method, then status (looked up by `&str`: no key is built per
    /// request).
    requests: BTreeMap<String, BTreeMap<u16, u64>>,
    bytes_in: u64,
    bytes_out: u64,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record(&self, method: &str, status: u16, bytes_in: u64, bytes_out: u64, took: Duration) {
        // A client may send any token as its method: the rest are one
        // count, so the map stays small.
        let method = if METHODS.contains(&method) {
            method
        } else {
            "OTHER"
        };
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match m.requests.get_mut(method) {
            Some(by_status) => *by_status.entry(status).or_default() += 1,
            None => {
                m.requests
                    .insert(method.to_string(), BTreeMap::from([(status, 1)]));
            }
        }
        m.bytes_in += bytes_in;
        m.bytes_out += bytes_out;
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                m.buckets[i] += 1;
            }
        }
        m.count += 1;
        m.sum += s;
    }

    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP zerocloud_requests_total Requests served, by method and status."
        );
        let _ = writeln!(s, "# TYPE zerocloud_requests_total counter");
        let counts = m
            .requests
            .iter()
            .flat_map(|(method, by)| by.iter().map(move |(status, n)| (method, status, n)));
        for (method, status, n) in counts {
            let _ = writeln!(
                s,
                "zerocloud_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP zerocloud_request_bytes_total Request body bytes received."
        );
        let _ = writeln!(s, "# TYPE zerocloud_request_bytes_total counter");
        let _ = writeln!(s, "zerocloud_request_bytes_total {}", m.bytes_in);
        let _ = writeln!(
            s,
            "# HELP zerocloud_response_bytes_total Response body bytes sent."
        );
        let _ = writeln!(s, "# TYPE zerocloud_response_bytes_total counter");
        let _ = writeln!(s, "zerocloud_response_bytes_total {}", m.bytes_out);
        let _ = writeln!(
            s,
            "# HELP zerocloud_request_duration_seconds Time to the response head."
        );
        let _ = writeln!(s, "# TYPE zerocloud_request_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "zerocloud_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                m.buckets[i]
            );
        }
        let _ = writeln!(
            s,
            "zerocloud_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.count
        );
        let _ = writeln!(s, "zerocloud_request_duration_seconds_sum {}", m.sum);
        let _ = writeln!(s, "zerocloud_request_duration_seconds_count {}", m.count);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_list_are_counted_as_one() {
        let m = Metrics::default();
        for method in ["GET", "GET", "FOO1", "FOO2", "BAR"] {
            m.record(method, 200, 0, 0, Duration::from_millis(1));
        }
        let text = m.render();
        assert!(text.contains("method=\"GET\",status=\"200\"} 2"), "{text}");
        assert!(
            text.contains("method=\"OTHER\",status=\"200\"} 3"),
            "{text}"
        );
        assert!(!text.contains("FOO"), "{text}");
    }
}
