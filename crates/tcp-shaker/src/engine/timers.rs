//! Deadlines of in-flight checks, ordered so the earliest is always at hand.
//!
//! An indexed binary min-heap: every check has one deadline, set when it is admitted and removed
//! when it finishes, usually long before it expires. Removal from the middle is O(log n) through
//! a position table indexed by slab slot, and nothing is allocated once the heap has grown to the
//! number of checks in flight (an ordered map would allocate and free tree nodes as checks come
//! and go).

use std::time::Instant;

use crate::slab::Key;

const NOT_QUEUED: u32 = u32::MAX;

pub(crate) struct Timers {
    /// (deadline, key), a min-heap on deadline.
    heap: Vec<(Instant, Key)>,
    /// For each slab slot index, its position in `heap`, or `NOT_QUEUED`.
    position: Vec<u32>,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Vec::new(),
            position: Vec::new(),
        }
    }

    /// Sets the deadline of `key`, which must not have one yet.
    pub(crate) fn insert(&mut self, key: Key, deadline: Instant) {
        if self.position.len() <= key.index() {
            self.position.resize(key.index() + 1, NOT_QUEUED);
        }
        debug_assert_eq!(self.position[key.index()], NOT_QUEUED);
        let at = self.heap.len();
        self.heap.push((deadline, key));
        self.position[key.index()] = at as u32;
        self.sift_up(at);
    }

    /// Removes the deadline of `key`, if it has one.
    pub(crate) fn remove(&mut self, key: Key) {
        let Some(&at) = self.position.get(key.index()) else {
            return;
        };
        if at == NOT_QUEUED || self.heap[at as usize].1 != key {
            return;
        }
        self.remove_at(at as usize);
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|&(deadline, _)| deadline)
    }

    /// Removes and returns a key whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Key> {
        match self.heap.first() {
            Some(&(deadline, key)) if deadline <= now => {
                self.remove_at(0);
                Some(key)
            }
            _ => None,
        }
    }

    fn remove_at(&mut self, at: usize) {
        let last = self.heap.len() - 1;
        self.swap(at, last);
        if let Some((_, key)) = self.heap.pop() {
            self.position[key.index()] = NOT_QUEUED;
        }
        if at < self.heap.len() {
            self.sift_down(at);
            self.sift_up(at);
        }
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.heap[parent].0 <= self.heap[at].0 {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let left = 2 * at + 1;
            let right = left + 1;
            let mut smallest = at;
            if left < self.heap.len() && self.heap[left].0 < self.heap[smallest].0 {
                smallest = left;
            }
            if right < self.heap.len() && self.heap[right].0 < self.heap[smallest].0 {
                smallest = right;
            }
            if smallest == at {
                break;
            }
            self.swap(at, smallest);
            at = smallest;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.position[self.heap[a].1.index()] = a as u32;
        self.position[self.heap[b].1.index()] = b as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::Slab;
    use std::time::Duration;

    #[test]
    fn expires_in_deadline_order_and_skips_removed() {
        let start = Instant::now();
        let mut slab = Slab::new();
        let mut timers = Timers::new();
        let offsets = [50u64, 10, 40, 20, 30, 60, 0];
        let keys: Vec<Key> = offsets
            .iter()
            .map(|&ms| {
                let key = slab.insert(ms).unwrap();
                timers.insert(key, start + Duration::from_millis(ms));
                key
            })
            .collect();
        timers.remove(keys[2]); // 40
        timers.remove(keys[2]); // removing twice is harmless
        assert_eq!(timers.next_deadline(), Some(start));
        let mut expired = Vec::new();
        while let Some(key) = timers.pop_expired(start + Duration::from_millis(55)) {
            expired.push(*slab.get(key).unwrap());
        }
        assert_eq!(expired, vec![0, 10, 20, 30, 50]);
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_millis(60))
        );
    }

    #[test]
    fn a_stale_key_does_not_remove_the_slots_new_deadline() {
        let start = Instant::now();
        let mut slab = Slab::new();
        let mut timers = Timers::new();
        let old = slab.insert(()).unwrap();
        timers.insert(old, start);
        assert_eq!(timers.pop_expired(start), Some(old));
        slab.remove(old);
        let new = slab.insert(()).unwrap();
        timers.insert(new, start);
        timers.remove(old);
        assert_eq!(timers.pop_expired(start), Some(new));
    }

    #[test]
    fn random_inserts_and_removals_keep_heap_order() {
        let start = Instant::now();
        let mut slab = Slab::new();
        let mut timers = Timers::new();
        let mut live = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            if live.is_empty() || next() % 3 != 0 {
                let ms = next() % 1000;
                let key = slab.insert(ms).unwrap();
                timers.insert(key, start + Duration::from_millis(ms));
                live.push(key);
            } else {
                let key = live.swap_remove((next() as usize) % live.len());
                timers.remove(key);
                slab.remove(key);
            }
        }
        let mut previous = 0;
        let mut count = 0;
        while let Some(key) = timers.pop_expired(start + Duration::from_secs(1)) {
            let ms = *slab.get(key).unwrap();
            assert!(ms >= previous);
            previous = ms;
            count += 1;
        }
        assert_eq!(count, live.len());
    }
}
