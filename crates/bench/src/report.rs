//! Latency statistics and their text and JSON forms.

use std::fmt::Write;
use std::time::Duration;

pub struct Report {
    /// Latencies in microseconds, sorted.
    lat: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Report {
    pub fn new(
        mut lat: Vec<u32>,
        errors: u64,
        first_error: Option<String>,
        elapsed: Duration,
    ) -> Self {
        lat.sort_unstable();
        Report {
            lat,
            errors,
            first_error,
            elapsed,
        }
    }

    /// Latency at quantile `q` (0..=1) in seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let idx = ((self.lat.len() as f64 * q).ceil() as usize).clamp(1, self.lat.len()) - 1;
        f64::from(self.lat[idx]) / 1e6
    }

    pub fn throughput(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mean_stddev(&self) -> (f64, f64) {
        if self.lat.is_empty() {
            return (0.0, 0.0);
        }
        let n = self.lat.len() as f64;
        let mean = self.lat.iter().map(|&l| f64::from(l)).sum::<f64>() / n;
        let var = self
            .lat
            .iter()
            .map(|&l| (f64::from(l) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean / 1e6, var.sqrt() / 1e6)
    }

    pub fn json(&self) -> serde_json::Value {
        let (mean, stddev) = self.mean_stddev();
        serde_json::json!({
            "requests": self.lat.len(),
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.throughput(),
            "latency_seconds": {
                "mean": mean,
                "stddev": stddev,
                "p50": self.quantile(0.50),
                "p90": self.quantile(0.90),
                "p99": self.quantile(0.99),
                "p999": self.quantile(0.999),
                "max": self.quantile(1.0),
                "min": self.lat.first().map_or(0.0, |&l| f64::from(l) / 1e6),
            }
        })
    }

    pub fn text(&self) -> String {
        let (mean, stddev) = self.mean_stddev();
        let mut s = String::new();
        let _ = writeln!(s, "\nSummary:");
        let _ = writeln!(s, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(s, "  Slowest:\t{:.4} secs.", self.quantile(1.0));
        let _ = writeln!(
            s,
            "  Fastest:\t{:.4} secs.",
            self.lat.first().map_or(0.0, |&l| f64::from(l) / 1e6)
        );
        let _ = writeln!(s, "  Average:\t{mean:.4} secs.");
        let _ = writeln!(s, "  Stddev:\t{stddev:.4} secs.");
        let _ = writeln!(s, "  Requests/sec:\t{:.4}", self.throughput());
        let _ = writeln!(s, "  Errors:\t{}", self.errors);
        if let Some(e) = &self.first_error {
            let _ = writeln!(s, "  First error:\t{e}");
        }
        let _ = writeln!(s, "\nLatency distribution:");
        for (label, q) in [
            ("10", 0.10),
            ("25", 0.25),
            ("50", 0.50),
            ("75", 0.75),
            ("90", 0.90),
            ("95", 0.95),
            ("99", 0.99),
            ("99.9", 0.999),
        ] {
            let _ = writeln!(s, "  {label}% in {:.4} secs.", self.quantile(q));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let r = Report::new((1..=1000).rev().collect(), 0, None, Duration::from_secs(1));
        assert_eq!(r.quantile(0.5), 500e-6);
        assert_eq!(r.quantile(0.99), 990e-6);
        assert_eq!(r.quantile(1.0), 1000e-6);
        assert_eq!(r.throughput(), 1000.0);
    }
}
