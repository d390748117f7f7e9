//! A progress display for long tasks (snapshot download, restore, defragmentation), shared by
//! `cairnctl` and `cairnutl`.

use crate::gofmt;
use std::time::{Duration, Instant};

/// How often a terminal's progress line is redrawn at most while the percentage stands still.
const REDRAW: Duration = Duration::from_millis(200);

/// A long task's progress on stderr: one line redrawn in place on a terminal; otherwise a
/// plain line each time another tenth is done, so logs and scripts get a few lines at most.
#[derive(Debug)]
pub struct Progress {
    /// What is being done ("Downloading snapshot").
    label: &'static str,
    /// The amounts are bytes (shown with the percentage); otherwise only the percentage.
    bytes: bool,
    tty: bool,
    /// Terminal: when and at what percentage the line was last drawn, and its width.
    drawn: Option<(Instant, u64)>,
    width: usize,
    /// Otherwise: the tenths reported so far.
    tenths: u64,
}

impl Progress {
    /// Progress in bytes.
    pub fn new(label: &'static str, tty: bool) -> Progress {
        Progress {
            label,
            bytes: true,
            tty,
            drawn: None,
            width: 0,
            tenths: 0,
        }
    }

    /// Progress in units that mean nothing to a reader (records): only the percentage shows.
    pub fn percent_only(label: &'static str, tty: bool) -> Progress {
        Progress {
            bytes: false,
            ..Progress::new(label, tty)
        }
    }

    fn text(&self, done: u64, total: u64) -> String {
        if self.bytes {
            progress_text(self.label, done, total)
        } else {
            format!("{}: {}%", self.label, percent(done, total))
        }
    }

    /// What to write to stderr once `received` of `total` bytes are done, if anything.
    pub fn update(&mut self, received: u64, total: u64, now: Instant) -> Option<String> {
        let pct = percent(received, total);
        if !self.tty {
            let tenths = pct / 10;
            if tenths <= self.tenths {
                return None;
            }
            self.tenths = tenths;
            return Some(format!("{}\n", self.text(received, total)));
        }
        let due = match self.drawn {
            None => true,
            Some((at, drawn_pct)) => drawn_pct != pct || now.duration_since(at) >= REDRAW,
        };
        if !due {
            return None;
        }
        self.drawn = Some((now, pct));
        let text = self.text(received, total);
        let len = text.chars().count();
        // Blanks out what a longer earlier line would leave behind.
        let pad = self.width.saturating_sub(len);
        self.width = len;
        Some(format!("\r{text}{}", " ".repeat(pad)))
    }

    /// What ends the display: a terminal's line is closed, so that what follows (the result or
    /// an error) starts on a line of its own.
    pub fn finish(&mut self) -> Option<String> {
        if self.tty && self.drawn.take().is_some() {
            return Some("\n".to_string());
        }
        None
    }
}

fn percent(received: u64, total: u64) -> u64 {
    if total == 0 {
        return 100;
    }
    let p = u128::from(received.min(total)) * 100 / u128::from(total);
    u64::try_from(p).unwrap_or(100)
}

/// One progress report: bytes done of the total, in go-humanize's units as etcd prints sizes,
/// and the percentage.
pub fn progress_text(label: &str, received: u64, total: u64) -> String {
    format!(
        "{label}: {} of {} ({}%)",
        gofmt::humanize_bytes(received),
        gofmt::humanize_bytes(total),
        percent(received, total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_well() {
        assert_eq!(
            progress_text("Downloading snapshot", 5_400_000, 11_000_000),
            "Downloading snapshot: 5.4 MB of 11 MB (49%)"
        );
        assert_eq!(
            progress_text("Downloading snapshot", 0, 0),
            "Downloading snapshot: 0 B of 0 B (100%)"
        );
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
        assert_eq!(percent(1, 3), 33);
    }

    #[test]
    fn plain_progress_is_a_line_per_tenth_at_most() {
        let mut p = Progress::new("Downloading snapshot", false);
        let now = Instant::now();
        let total = 1000;
        let lines: Vec<String> = (1..=total / 5)
            .filter_map(|i| p.update(i * 5, total, now))
            .collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[0], "Downloading snapshot: 100 B of 1.0 kB (10%)\n");
        assert_eq!(lines[9], "Downloading snapshot: 1.0 kB of 1.0 kB (100%)\n");
        assert!(lines.iter().all(|l| !l.contains('\r')));
        assert_eq!(p.finish(), None);
        // A snapshot that arrives in one message is one line.
        let mut p = Progress::new("Downloading snapshot", false);
        assert_eq!(p.update(7, 7, now).map(|l| l.lines().count()), Some(1));
    }

    #[test]
    fn terminal_progress_redraws_one_line() {
        let mut p = Progress::new("Downloading snapshot", true);
        let t0 = Instant::now();
        let first = p.update(1_500_000, 3_000_000, t0);
        assert_eq!(
            first.as_deref(),
            Some("\rDownloading snapshot: 1.5 MB of 3.0 MB (50%)")
        );
        // Same percentage, too soon: nothing; later: drawn again.
        assert_eq!(p.update(1_500_100, 3_000_000, t0), None);
        assert!(p.update(1_500_200, 3_000_000, t0 + REDRAW).is_some());
        // A shorter line blanks out the rest of the longer one.
        let last = p
            .update(3_000_000, 3_000_000, t0 + REDRAW)
            .unwrap_or_default();
        assert_eq!(last, "\rDownloading snapshot: 3.0 MB of 3.0 MB (100%)");
        let mut p = Progress::new("Downloading snapshot", true);
        p.update(999_999, 2_000_000, t0);
        let shorter = p.update(1_000_000, 2_000_000, t0).unwrap_or_default();
        assert_eq!(shorter, "\rDownloading snapshot: 1.0 MB of 2.0 MB (50%) ");
        assert_eq!(p.finish().as_deref(), Some("\n"));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn percent_only_progress_shows_no_units() {
        let mut p = Progress::percent_only("Defragmenting", false);
        let now = Instant::now();
        assert_eq!(
            p.update(1, 4, now),
            Some("Defragmenting: 25%\n".to_string())
        );
        assert_eq!(
            p.update(2, 4, now),
            Some("Defragmenting: 50%\n".to_string())
        );
    }
}
