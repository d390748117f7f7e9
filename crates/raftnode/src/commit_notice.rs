//! When followers hear that the commit index moved.
//!
//! raft-rs, like etcd's raft, tells every follower the moment the leader's commit index moves,
//! with an empty append each, and each follower answers it. With few clients that doubles the
//! messages per write: in a 3-member cluster a write sent to the leader woke its Raft thread
//! five or six times instead of three, and on a small machine those wake-ups, not the disk,
//! decided how many writes a second one client gets.
//!
//! The leader here runs raft-rs with `skip_bcast_commit` and tells followers itself, later
//! rather than at once: a new commit index normally rides along with the next append (any
//! proposal) or heartbeat. It is sent on its own only
//! - at once, to a follower whose forwarded proposal just committed: that follower answers its
//!   client when it applies the entry, so its client waits for this message;
//! - to every follower not told otherwise, once the next proposal is late: while proposals
//!   come less than [`MAX_WAIT`] apart (a client writing one key after another), the leader
//!   waits up to twice their usual spacing for the next one to carry the news; when they are
//!   sparser it tells followers at once, as raft-rs would. So what followers apply, and their
//!   watchers see, trails the leader by at most [`MAX_WAIT`], and only under a steady stream of
//!   writes.
//!
//! Nothing here affects safety: the commit index is the leader's to tell whenever it likes, and
//! linearizable reads on followers learn it through ReadIndex's own heartbeat round.

use raft::eraftpb::{Message, MessageType};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The longest the leader waits for a proposal to carry a new commit index to followers.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(2);
/// Longer pauses between proposals count as this long in their average, so that after an idle
/// spell a steady stream is recognised within a dozen proposals.
const MAX_GAP_SAMPLE: Duration = Duration::from_millis(10);

#[derive(Default)]
pub(crate) struct CommitNotices {
    /// The highest commit index sent to each member (what it carried; it may have been lost,
    /// in which case the next heartbeat tells it).
    told: HashMap<u64, u64>,
    /// Proposals forwarded by followers: the last index of each and the member waiting for it.
    forwarded: VecDeque<(u64, u64)>,
    /// When the members still untold get an append of their own.
    due: Option<Instant>,
    /// The commit index at the last such round: until it moves, a member that could not be
    /// sent one (paused, being sent a snapshot) is not tried again every millisecond.
    notified_at: u64,
    last_proposal: Option<Instant>,
    /// Moving average of the time between proposals (None: fewer than two so far).
    proposal_gap: Option<Duration>,
}

impl CommitNotices {
    /// Notes the commit index a message to another member carries.
    pub(crate) fn sent(&mut self, m: &Message) {
        if matches!(
            m.get_msg_type(),
            MessageType::MsgAppend | MessageType::MsgHeartbeat
        ) {
            let told = self.told.entry(m.to).or_default();
            *told = (*told).max(m.commit);
        }
    }

    /// Member `from`'s proposal was appended up to `last_index`.
    pub(crate) fn forwarded(&mut self, from: u64, last_index: u64) {
        self.forwarded.push_back((last_index, from));
    }

    /// A proposal reached the leader at `now`.
    pub(crate) fn proposed(&mut self, now: Instant) {
        if let Some(last) = self.last_proposal {
            let gap = now.saturating_duration_since(last).min(MAX_GAP_SAMPLE);
            self.proposal_gap = Some(match self.proposal_gap {
                Some(avg) => avg * 7 / 8 + gap / 8,
                None => gap,
            });
        }
        self.last_proposal = Some(now);
    }

    /// How long to wait for the next proposal to carry a commit index; None: do not wait.
    fn wait(&self) -> Option<Duration> {
        self.proposal_gap
            .filter(|gap| *gap < MAX_WAIT)
            .map(|gap| (gap * 2).min(MAX_WAIT))
    }

    /// This member does not lead (any more): nothing is owed to anyone.
    pub(crate) fn reset(&mut self) {
        *self = CommitNotices::default();
    }

    /// When [`CommitNotices::due`] next has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.due
    }

    /// The members that must be sent an append now, given the leader's commit index and the
    /// other members.
    pub(crate) fn due(
        &mut self,
        committed: u64,
        members: impl Iterator<Item = u64>,
        now: Instant,
    ) -> Vec<u64> {
        let told = |told: &HashMap<u64, u64>, m: u64| told.get(&m).copied().unwrap_or(0);
        let mut now_due = Vec::new();
        while let Some(&(index, member)) = self.forwarded.front() {
            if index > committed {
                break;
            }
            self.forwarded.pop_front();
            if told(&self.told, member) < committed {
                now_due.push(member);
            }
        }
        // Called on every turn of the Raft loop: nothing is allocated unless someone is owed.
        let behind: Vec<u64> = members
            .filter(|&m| told(&self.told, m) < committed)
            .collect();
        if behind.is_empty() {
            self.due = None;
        } else {
            match self.due {
                Some(at) if now >= at => {
                    self.due = None;
                    self.notified_at = committed;
                    now_due.extend(behind);
                }
                Some(_) => {}
                None if committed > self.notified_at => match self.wait() {
                    Some(wait) => self.due = Some(now + wait),
                    None => {
                        self.notified_at = committed;
                        now_due.extend(behind);
                    }
                },
                None => {}
            }
        }
        now_due.sort_unstable();
        now_due.dedup();
        now_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(to: u64, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = to;
        m.commit = commit;
        m
    }

    /// Proposals `gap` apart, ending at the returned instant.
    fn steady(n: &mut CommitNotices, gap: Duration) -> Instant {
        let mut t = Instant::now();
        for _ in 0..20 {
            n.proposed(t);
            t += gap;
        }
        t - gap
    }

    #[test]
    fn a_commit_carried_by_an_append_needs_no_notice() {
        let mut n = CommitNotices::default();
        let t0 = Instant::now();
        n.sent(&append(2, 5));
        n.sent(&append(3, 5));
        assert!(n.due(5, [2, 3].into_iter(), t0).is_empty());
        assert_eq!(n.deadline(), None);
    }

    #[test]
    fn under_steady_writes_untold_members_hear_when_the_next_proposal_is_late() {
        let mut n = CommitNotices::default();
        let gap = Duration::from_micros(500);
        let t0 = steady(&mut n, gap);
        n.sent(&append(2, 4));
        n.sent(&append(3, 5));
        assert!(n.due(5, [2, 3].into_iter(), t0).is_empty());
        let deadline = n.deadline().unwrap_or(t0);
        assert!(
            deadline > t0 + gap && deadline <= t0 + MAX_WAIT,
            "{:?}",
            deadline - t0
        );
        assert!(
            n.due(5, [2, 3].into_iter(), t0).is_empty(),
            "not before the deadline"
        );
        assert_eq!(n.due(5, [2, 3].into_iter(), deadline), vec![2]);
        // The append could not go (say member 2 is paused): no retry until the commit moves.
        assert!(n.due(5, [2, 3].into_iter(), deadline + MAX_WAIT).is_empty());
        assert_eq!(n.deadline(), None);
        assert!(n.due(6, [2, 3].into_iter(), deadline + MAX_WAIT).is_empty());
        assert!(n.deadline().is_some());
    }

    #[test]
    fn the_next_proposal_carries_the_commit_before_the_deadline() {
        let mut n = CommitNotices::default();
        let t0 = steady(&mut n, Duration::from_micros(500));
        n.sent(&append(2, 4));
        assert!(n.due(5, [2].into_iter(), t0).is_empty());
        assert!(n.deadline().is_some());
        n.sent(&append(2, 5));
        assert!(n.due(5, [2].into_iter(), t0).is_empty());
        assert_eq!(n.deadline(), None);
    }

    #[test]
    fn sparse_or_no_proposals_tell_followers_at_once() {
        let mut n = CommitNotices::default();
        let t0 = Instant::now();
        assert_eq!(n.due(5, [2, 3].into_iter(), t0), vec![2, 3]);
        let t1 = steady(&mut n, Duration::from_millis(10));
        assert_eq!(n.due(6, [2, 3].into_iter(), t1), vec![2, 3]);
        assert_eq!(n.deadline(), None);
    }

    #[test]
    fn a_follower_hears_at_once_when_its_proposal_commits() {
        let mut n = CommitNotices::default();
        let t0 = steady(&mut n, Duration::from_micros(500));
        n.forwarded(3, 7);
        n.sent(&append(2, 6));
        n.sent(&append(3, 6));
        assert!(
            n.due(6, [2, 3].into_iter(), t0).is_empty(),
            "not committed yet"
        );
        assert_eq!(n.due(7, [2, 3].into_iter(), t0), vec![3]);
        // Member 2 waits for no answer: it hears later.
        assert!(n.deadline().is_some());
    }

    #[test]
    fn a_heartbeat_tells_too_and_reset_forgets_everything() {
        let mut n = CommitNotices::default();
        let mut hb = append(2, 9);
        hb.set_msg_type(MessageType::MsgHeartbeat);
        n.sent(&hb);
        n.forwarded(2, 12);
        assert!(n.due(9, [2].into_iter(), Instant::now()).is_empty());
        n.reset();
        assert!(n.due(12, std::iter::empty(), Instant::now()).is_empty());
    }
}
