//! Unique ids for requests and leases, in the shape of etcd's `idutil.Generator`: the low 16 bits
//! of the member id on top, then 40 bits of the Unix time in milliseconds at start, then an 8-bit
//! counter that carries into the time bits.
//!
//! The time part is what keeps ids unique across restarts: a member that restarts begins above
//! every id it handed out before, unless it handed out more than 256 ids per millisecond for the
//! whole previous run or the wall clock stepped back across the restart. The apply loop matches
//! applied entries to waiting requests by id, so an id reused while entries of a previous run
//! are replayed would hand one request another's result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const TIME_BITS: u32 = 40;
const COUNT_BITS: u32 = 8;
const SUFFIX_BITS: u32 = TIME_BITS + COUNT_BITS;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

pub struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    /// A generator for `member_id` starting from the current wall-clock time.
    pub fn new(member_id: u64) -> IdGenerator {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator::starting_at(member_id, now_ms)
    }

    pub fn starting_at(member_id: u64, unix_ms: u64) -> IdGenerator {
        IdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((unix_ms & ((1 << TIME_BITS) - 1)) << COUNT_BITS),
        }
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.prefix | (suffix & SUFFIX_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_member_bits_and_increase() {
        let g = IdGenerator::starting_at(0xabcd_1234_5678_9abc, 1_700_000_000_000);
        let a = g.next();
        let b = g.next();
        assert_eq!(a >> 48, 0x9abc);
        assert_eq!(b, a + 1);
    }

    #[test]
    fn a_later_start_begins_above_an_earlier_run() {
        // A run that handed out 100 ids per millisecond for 10 s, then a restart 1 ms later.
        let first = IdGenerator::starting_at(7, 1_700_000_000_000);
        let mut last = 0;
        for _ in 0..1_000_000 {
            last = first.next();
        }
        let second = IdGenerator::starting_at(7, 1_700_000_000_000 + 10_001);
        assert!(second.next() > last);
    }

    #[test]
    fn the_counter_wraps_inside_the_suffix() {
        let g = IdGenerator::starting_at(1, (1 << TIME_BITS) - 1);
        g.suffix.store(SUFFIX_MASK, Ordering::Relaxed);
        assert_eq!(g.next(), 1 << SUFFIX_BITS);
    }
}
