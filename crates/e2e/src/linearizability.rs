//! A linearizability checker for histories of single-key operations, in the spirit of
//! Porcupine and Knossos (Wing & Gong's search with Lowe's memoization).
//!
//! Every key is a register checked on its own (linearizability is compositional). An operation
//! has the time it was called and, if its outcome is known, the time it returned and what it
//! returned. An operation whose outcome is unknown (timed out, connection lost) may have taken
//! effect at any point after its call, or never: it is given no return time and may be left
//! out of the linearization.
//!
//! The search tries to order the operations so that each one takes effect between its call and
//! its return, and every returned value is what the register held at that point. States already
//! explored (which operations are placed, register value) are remembered, which keeps the
//! search small for the histories concurrent clients produce.

use std::collections::{BTreeMap, HashSet};

/// What a client did to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(String),
    Get,
    Delete,
    /// Put `new` if the value is `expected` (a txn with a value compare).
    Cas {
        expected: String,
        new: String,
    },
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Put,
    Get(Option<String>),
    /// How many keys were deleted (0 or 1).
    Delete(i64),
    Cas(bool),
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Event {
    pub key: String,
    pub op: Op,
    /// Nanoseconds since the history began.
    pub call: u64,
    /// None when the outcome is unknown.
    pub ret: Option<(u64, Outcome)>,
}

/// Where a history stops being linearizable.
#[derive(Debug, Clone)]
pub struct Violation {
    pub key: String,
    /// The key's operations, in call order.
    pub events: Vec<Event>,
}

/// Applies `op` to a register holding `state`; the new state and what a correct server answers.
fn step(state: &Option<String>, op: &Op) -> (Option<String>, Outcome) {
    match op {
        Op::Put(v) => (Some(v.clone()), Outcome::Put),
        Op::Get => (state.clone(), Outcome::Get(state.clone())),
        Op::Delete => (None, Outcome::Delete(i64::from(state.is_some()))),
        Op::Cas { expected, new } => {
            if state.as_deref() == Some(expected.as_str()) {
                (Some(new.clone()), Outcome::Cas(true))
            } else {
                (state.clone(), Outcome::Cas(false))
            }
        }
    }
}

/// Checks a whole history, key by key; the first key that is not linearizable, if any.
pub fn check(history: &[Event]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in history {
        by_key.entry(&e.key).or_default().push(e.clone());
    }
    for (key, mut events) in by_key {
        events.sort_by_key(|e| e.call);
        if !check_register(&events) {
            return Err(Violation {
                key: key.to_string(),
                events,
            });
        }
    }
    Ok(())
}

/// Whether one register's events (in call order) can be linearized, starting from an absent
/// value.
pub fn check_register(events: &[Event]) -> bool {
    let n = events.len();
    let words = n.div_ceil(64).max(1);
    let mut placed = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    // Depth-first search with an explicit stack of (chosen event, state before it).
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state: Option<String> = None;
    let mut next_candidate = 0usize;
    let is_placed = |p: &[u64], i: usize| p[i / 64] & (1 << (i % 64)) != 0;
    loop {
        // Done when every event with a known outcome is placed; the unknown rest never
        // happened.
        if (0..n).all(|i| is_placed(&placed, i) || events[i].ret.is_none()) {
            return true;
        }
        // An event can go next only if it was called before every unplaced event returned.
        let horizon = (0..n)
            .filter(|&i| !is_placed(&placed, i))
            .filter_map(|i| events[i].ret.as_ref().map(|(t, _)| *t))
            .min()
            .unwrap_or(u64::MAX);
        let mut advanced = false;
        let mut i = next_candidate;
        while i < n {
            if !is_placed(&placed, i) && events[i].call <= horizon {
                let (after, outcome) = step(&state, &events[i].op);
                let fits = events[i].ret.as_ref().is_none_or(|(_, o)| *o == outcome);
                if fits {
                    let mut next = placed.clone();
                    next[i / 64] |= 1 << (i % 64);
                    if seen.insert((next.clone(), after.clone())) {
                        stack.push((i, state));
                        placed = next;
                        state = after;
                        next_candidate = 0;
                        advanced = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        if advanced {
            continue;
        }
        // Nothing fits here: undo the last choice and try the next candidate after it.
        match stack.pop() {
            Some((last, before)) => {
                placed[last / 64] &= !(1 << (last % 64));
                state = before;
                next_candidate = last + 1;
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, call: u64, ret: Option<(u64, Outcome)>) -> Event {
        Event {
            key: "k".into(),
            op,
            call,
            ret,
        }
    }

    fn put(v: &str, call: u64, ret: u64) -> Event {
        ev(Op::Put(v.into()), call, Some((ret, Outcome::Put)))
    }

    fn get(v: Option<&str>, call: u64, ret: u64) -> Event {
        ev(
            Op::Get,
            call,
            Some((ret, Outcome::Get(v.map(String::from)))),
        )
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            put("a", 0, 1),
            get(Some("a"), 2, 3),
            put("b", 4, 5),
            get(Some("b"), 6, 7),
        ];
        assert!(check_register(&h));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        // The put of "b" returned before the get was called, yet the get saw "a".
        let h = [put("a", 0, 1), put("b", 2, 3), get(Some("a"), 4, 5)];
        assert!(!check_register(&h));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The get overlaps the put of "b": seeing "a" or "b" are both fine.
        let a = [put("a", 0, 1), put("b", 2, 10), get(Some("a"), 3, 4)];
        let b = [put("a", 0, 1), put("b", 2, 10), get(Some("b"), 3, 4)];
        assert!(check_register(&a));
        assert!(check_register(&b));
    }

    #[test]
    fn reads_must_not_go_back_in_time() {
        // Two reads during a long write: once one saw "b", a later one cannot see "a".
        let h = [
            put("a", 0, 1),
            put("b", 2, 20),
            get(Some("b"), 3, 4),
            get(Some("a"), 5, 6),
        ];
        assert!(!check_register(&h));
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let lost = ev(Op::Put("x".into()), 2, None);
        let happened = [put("a", 0, 1), lost.clone(), get(Some("x"), 5, 6)];
        let did_not = [put("a", 0, 1), lost, get(Some("a"), 5, 6)];
        assert!(check_register(&happened));
        assert!(check_register(&did_not));
        // But a value nobody wrote is never fine.
        let invented = [put("a", 0, 1), get(Some("zzz"), 5, 6)];
        assert!(!check_register(&invented));
    }

    #[test]
    fn cas_and_delete_follow_the_register() {
        let h = [
            put("a", 0, 1),
            ev(
                Op::Cas {
                    expected: "a".into(),
                    new: "b".into(),
                },
                2,
                Some((3, Outcome::Cas(true))),
            ),
            ev(Op::Delete, 4, Some((5, Outcome::Delete(1)))),
            get(None, 6, 7),
        ];
        assert!(check_register(&h));
        // A CAS that claims success against a value that was not there.
        let bad = [
            put("a", 0, 1),
            ev(
                Op::Cas {
                    expected: "z".into(),
                    new: "b".into(),
                },
                2,
                Some((3, Outcome::Cas(true))),
            ),
        ];
        assert!(!check_register(&bad));
    }

    #[test]
    fn many_concurrent_writers_check_quickly() {
        // 8 writers each overlapping all others, then a read of the last one's value.
        let mut h: Vec<Event> = (0..8).map(|i| put(&format!("v{i}"), i, 100 + i)).collect();
        h.push(get(Some("v3"), 200, 201));
        assert!(check_register(&h));
        h.push(get(Some("v5"), 202, 203));
        assert!(!check_register(&h));
    }
}
