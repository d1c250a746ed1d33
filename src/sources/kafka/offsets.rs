//! Offset bookkeeping, pure: which partitions are ours, which offsets the
//! sinks confirmed, what was committed, and which partitions reached their
//! end. Owned by the run loop alone (no lock); the loop feeds it what the
//! consumer, the acks and the rebalance signals say, and asks it what to
//! commit.
//!
//! Invariants:
//! - an offset is confirmed only when every message before it in its
//!   partition was handled: a record the sinks confirmed, or a message that
//!   was written to the dead-letter file or was a control message;
//! - once a batch is not wholly confirmed, nothing after it ever is (a later
//!   offset would commit past records that were not delivered);
//! - a partition that is not assigned is never confirmed nor committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A partition: (topic, partition). The topic name is shared
/// ([`TopicNames`]): a message's coordinates cost no allocation.
pub(super) type Tp = (Arc<str>, i32);

/// The topic names seen so far, each allocated once.
#[derive(Debug, Default)]
pub(super) struct TopicNames(Vec<Arc<str>>);

impl TopicNames {
    /// The shared name of `topic` (a handful of topics: a linear search).
    pub fn get(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.0.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.0.push(t.clone());
        t
    }
}

/// One message read, in the order read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub tp: Tp,
    pub offset: i64,
}

#[derive(Debug, Default)]
pub(super) struct Offsets {
    assigned: HashSet<Tp>,
    /// Next offset to commit (last confirmed + 1).
    confirmed: HashMap<Tp, i64>,
    committed: HashMap<Tp, i64>,
    /// End-of-partition events since the last message, by partition number:
    /// librdkafka's EOF event carries the partition but not the topic, so with
    /// several topics a partition number is at its end once it has as many EOF
    /// events as assigned topics have that partition.
    eof: HashMap<i32, usize>,
    /// A batch was not wholly confirmed: nothing more is (see [`Offsets::confirm`]).
    stopped: bool,
}

impl Offsets {
    /// Partitions given to this consumer.
    pub fn assign(&mut self, tps: impl IntoIterator<Item = Tp>) {
        self.assigned.extend(tps);
        self.eof.clear();
    }

    /// Partitions taken away: they are another consumer's now.
    pub fn revoke<'a>(&mut self, tps: impl IntoIterator<Item = &'a Tp>) {
        for tp in tps {
            self.assigned.remove(tp);
            self.confirmed.remove(tp);
            self.committed.remove(tp);
        }
        self.eof.clear();
    }

    /// Every partition taken away (an eager rebalance that failed).
    pub fn revoke_all(&mut self) {
        let all: Vec<Tp> = self.assigned.iter().cloned().collect();
        self.revoke(&all);
    }

    pub fn assigned(&self) -> usize {
        self.assigned.len()
    }

    /// A message on partition number `p`: its topic is not at its end any more.
    /// Which topic's EOF that cancels is unknown, so at most all but one of the
    /// topics with that partition number stay counted (exact for one topic).
    pub fn message_on(&mut self, p: i32) {
        if let Some(seen) = self.eof.get_mut(&p) {
            let topics = self.assigned.iter().filter(|(_, q)| *q == p).count();
            *seen = (*seen).min(topics.saturating_sub(1));
        }
    }

    /// Partition number `p` of some assigned topic reached its end.
    pub fn eof_on(&mut self, p: i32) {
        *self.eof.entry(p).or_default() += 1;
    }

    /// Every assigned partition has reported its end since its last message.
    pub fn all_at_end(&self) -> bool {
        if self.assigned.is_empty() {
            return false;
        }
        let mut wanted: HashMap<i32, usize> = HashMap::new();
        for (_, p) in &self.assigned {
            *wanted.entry(*p).or_default() += 1;
        }
        wanted
            .iter()
            .all(|(p, n)| self.eof.get(p).is_some_and(|seen| seen >= n))
    }

    /// Takes a batch's ack: its first `handled` messages, in the order read,
    /// are confirmed (records the sinks confirmed, and the messages around
    /// them that were dead-lettered or were control messages); what the
    /// output handle translated from the pipeline's ack. Once a batch is not
    /// wholly confirmed (a record limit cut it, the pipeline stopped, records
    /// were lost), nothing after it is: a later offset on the same partition
    /// would commit past the records that were not delivered.
    pub fn confirm(&mut self, entries: &[Entry], handled: usize) {
        if self.stopped {
            return;
        }
        if handled < entries.len() {
            self.stopped = true;
        }
        for e in &entries[..handled.min(entries.len())] {
            // A partition revoked meanwhile is another consumer's now.
            if self.assigned.contains(&e.tp) {
                match self.confirmed.get_mut(&e.tp) {
                    Some(next) => *next = (*next).max(e.offset + 1),
                    None => {
                        self.confirmed.insert(e.tp.clone(), e.offset + 1);
                    }
                }
            }
        }
    }

    /// Confirmed offsets not yet committed, for assigned partitions in `only`
    /// (or all), sorted by partition.
    pub fn to_commit(&self, only: Option<&HashSet<Tp>>) -> Vec<(Tp, i64)> {
        let mut out: Vec<(Tp, i64)> = self
            .confirmed
            .iter()
            .filter(|(tp, _)| self.assigned.contains(*tp) && only.is_none_or(|o| o.contains(*tp)))
            .filter(|(tp, off)| self.committed.get(*tp) != Some(*off))
            .map(|(tp, off)| (tp.clone(), *off))
            .collect();
        out.sort();
        out
    }

    pub fn mark_committed(&mut self, offsets: &[(Tp, i64)]) {
        for (tp, off) in offsets {
            self.committed.insert(tp.clone(), *off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("t".into(), p)
    }

    fn rec(p: i32, offset: i64) -> Entry {
        Entry { tp: tp(p), offset }
    }

    fn assigned(ps: &[i32]) -> Offsets {
        let mut s = Offsets::default();
        s.assign(ps.iter().map(|p| tp(*p)));
        s
    }

    #[test]
    fn commits_cover_only_assigned_and_uncommitted_partitions() {
        let mut s = assigned(&[0, 1]);
        s.confirm(&[rec(0, 9), rec(1, 4)], 2);
        s.revoke(&[tp(1)]); // not ours any more
        let c = s.to_commit(None);
        assert_eq!(c, vec![(tp(0), 10)]);
        s.mark_committed(&c);
        assert!(s.to_commit(None).is_empty(), "nothing new to commit");
        s.confirm(&[rec(0, 10)], 1);
        assert_eq!(s.to_commit(None), vec![(tp(0), 11)]);
    }

    #[test]
    fn offsets_are_confirmed_per_partition_in_order() {
        let mut s = assigned(&[0, 1]);
        s.confirm(&[rec(0, 5), rec(1, 2), rec(0, 6), rec(1, 3)], 4);
        assert_eq!(s.to_commit(None), vec![(tp(0), 7), (tp(1), 4)]);
        // A batch confirmed later never moves a partition backwards.
        s.confirm(&[rec(0, 1)], 1);
        assert_eq!(s.to_commit(None)[0], (tp(0), 7));
    }

    #[test]
    fn nothing_is_confirmed_past_a_batch_that_was_not_wholly_confirmed() {
        let mut s = assigned(&[0]);
        // Messages at offsets 1-4; a record limit let 2 of them in.
        let batch: Vec<Entry> = (1..=4).map(|o| rec(0, o)).collect();
        s.confirm(&batch, 2);
        assert_eq!(s.to_commit(None), vec![(tp(0), 3)], "1 and 2 delivered");
        // A later batch, wholly confirmed, does not move past 3 and 4.
        s.confirm(&[rec(0, 5)], 1);
        assert_eq!(s.to_commit(None), vec![(tp(0), 3)], "3 and 4 never were");
    }

    #[test]
    fn revoked_partitions_are_never_confirmed_nor_committed() {
        let mut s = assigned(&[0, 1]);
        s.confirm(&[rec(0, 1)], 1);
        s.revoke(&[tp(0)]);
        s.confirm(&[rec(0, 2), rec(1, 5)], 2);
        assert_eq!(s.to_commit(None), vec![(tp(1), 6)]);
        // Given back later, it starts from what its new owner committed.
        s.assign([tp(0)]);
        assert_eq!(s.to_commit(None), vec![(tp(1), 6)]);
        s.revoke_all();
        assert_eq!(s.assigned(), 0);
        s.confirm(&[rec(1, 6)], 1);
        assert!(s.to_commit(None).is_empty());
    }

    #[test]
    fn a_revocation_commits_only_its_own_partitions() {
        let mut s = assigned(&[0, 1]);
        s.confirm(&[rec(0, 1), rec(1, 1)], 2);
        let only: HashSet<Tp> = [tp(1)].into();
        assert_eq!(s.to_commit(Some(&only)), vec![(tp(1), 2)]);
    }

    #[test]
    fn a_topic_name_is_allocated_once() {
        let mut names = TopicNames::default();
        let a = names.get("a");
        assert!(Arc::ptr_eq(&a, &names.get("a")));
        assert_eq!(&*names.get("b"), "b");
        assert!(Arc::ptr_eq(&a, &names.get("a")));
    }

    #[test]
    fn the_end_needs_an_eof_per_assigned_topic_partition() {
        let mut s = Offsets::default();
        assert!(!s.all_at_end(), "nothing assigned yet");
        for t in ["a", "b"] {
            s.assign((0..2).map(|p| (Arc::from(t), p)));
        }
        s.eof_on(0);
        s.eof_on(0);
        s.eof_on(1);
        assert!(!s.all_at_end(), "partition 1 of one topic is still going");
        s.eof_on(1);
        assert!(s.all_at_end());
        s.message_on(0); // a message arrived on partition 0 of one of the topics
        assert_eq!(s.eof[&0], 1);
        assert!(!s.all_at_end());
        s.eof_on(0); // its EOF came again
        assert!(s.all_at_end());
    }
}
