//! A bounded window of recently seen keys: the X stream drops a tweet seen
//! again after a reconnect or backfill, the webhooks answer a redelivery of a
//! recorded item at once. The oldest key leaves when the window is full.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// foldhash, randomly seeded per process: a lookup per record on the stream's
/// hot path, where SipHash cost more than the rest of the dedupe.
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// The last `capacity` keys inserted (0: remembers nothing).
#[derive(Debug)]
pub struct SeenWindow<K> {
    set: FastSet<K>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> SeenWindow<K> {
    pub fn new(capacity: usize) -> Self {
        SeenWindow {
            set: FastSet::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.set.contains(key)
    }

    /// True if `key` is new (and remembers it, forgetting the oldest when full).
    pub fn insert(&mut self, key: K) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if !self.set.insert(key.clone()) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(key);
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_until_it_leaves_the_window() {
        let mut w = SeenWindow::new(2);
        assert!(w.insert(1));
        assert!(!w.insert(1));
        assert!(w.insert(2));
        assert!(w.insert(3));
        assert_eq!(w.len(), 2);
        assert!(!w.contains(&1));
        assert!(w.insert(1), "forgotten, so new again");
        assert!(w.contains(&3));
    }

    /// The X stream's 100 000-id window: an id is still a duplicate after
    /// 99 999 others, and new again once 100 000 others came after it.
    #[test]
    fn a_100_000_window_forgets_an_id_after_100_000_others() {
        let mut w = SeenWindow::new(100_000);
        assert!(w.insert(0u64));
        for k in 1..100_000u64 {
            assert!(w.insert(k));
        }
        assert!(!w.insert(0), "99 999 others later: still seen");
        assert!(!w.insert(99_999));
        assert!(w.insert(100_000), "the 100 000th other");
        assert_eq!(w.len(), 100_000);
        assert!(!w.contains(&0) && w.contains(&1));
        assert!(w.insert(0), "forgotten, so new again");
        assert!(!w.contains(&1), "and 1 leaves in its turn");
    }

    #[test]
    fn a_zero_window_remembers_nothing() {
        let mut w = SeenWindow::new(0);
        assert!(w.insert("a"));
        assert!(w.insert("a"));
        assert!(w.is_empty());
    }
}
