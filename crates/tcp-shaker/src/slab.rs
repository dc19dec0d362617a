//! A slab whose keys carry a generation, so that a stale key never reaches a newer entry.
//!
//! The event loop keys in-flight checks and sockets by slot; a slot is reused as soon as its
//! entry is removed. The generation, bumped on every removal, makes a key to the old entry
//! (a late resolver answer, a cancel from a dropped future, a poll token) miss instead of hitting
//! the new one. Keys fit a `usize`, so they serve as `mio::Token`s.

/// Bits of a packed key that hold the slot index; the rest hold the generation.
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// The highest slot index; the all-ones index is left free for tokens that are not slab keys.
const MAX_INDEX: usize = INDEX_MASK - 1;

/// A key into a [`Slab`]: slot index and the generation of the entry it was issued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The key packed into a `usize` (index in the low half, generation in the high half).
    pub(crate) fn to_usize(self) -> usize {
        let generation = (self.generation as usize) & (usize::MAX >> INDEX_BITS);
        (generation << INDEX_BITS) | self.index as usize
    }

    /// The key a `usize` from [`Key::to_usize`] stands for.
    pub(crate) fn from_usize(packed: usize) -> Key {
        Key {
            index: (packed & INDEX_MASK) as u32,
            generation: (packed >> INDEX_BITS) as u32,
        }
    }

    /// The slot index, dense from 0: usable to index side tables.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }
}

enum Slot<T> {
    Occupied {
        generation: u32,
        value: T,
    },
    Vacant {
        generation: u32,
        next_free: Option<u32>,
    },
}

/// Entries keyed by [`Key`]; insertion and removal are O(1) and allocate only to grow.
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free_head: Option<u32>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free_head: None,
        }
    }

    /// Stores `value`; gives it back when every representable slot is taken.
    pub(crate) fn insert(&mut self, value: T) -> Result<Key, T> {
        let (index, generation) = match self.free_head {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                let Slot::Vacant {
                    generation,
                    next_free,
                } = *slot
                else {
                    unreachable!("the free list only links vacant slots");
                };
                self.free_head = next_free;
                *slot = Slot::Occupied { generation, value };
                (index, generation)
            }
            None if self.slots.len() <= MAX_INDEX.min(u32::MAX as usize) => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot::Occupied {
                    generation: 0,
                    value,
                });
                (index, 0)
            }
            None => return Err(value),
        };
        Ok(Key { index, generation })
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize)? {
            Slot::Occupied { generation, value } if same_generation(*generation, key) => {
                Some(value)
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize)? {
            Slot::Occupied { generation, value } if same_generation(*generation, key) => {
                Some(value)
            }
            _ => None,
        }
    }

    /// Removes and returns the entry `key` was issued for, if it is still there.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        let generation = match slot {
            Slot::Occupied { generation, .. } if same_generation(*generation, key) => *generation,
            _ => return None,
        };
        let vacant = Slot::Vacant {
            generation: generation.wrapping_add(1),
            next_free: self.free_head,
        };
        let Slot::Occupied { value, .. } = std::mem::replace(slot, vacant) else {
            unreachable!("the slot was just seen occupied");
        };
        self.free_head = Some(key.index);
        Some(value)
    }

    /// The keys of every entry, for tearing everything down.
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match slot {
                Slot::Occupied { generation, .. } => Some(Key {
                    index: index as u32,
                    generation: *generation,
                }),
                Slot::Vacant { .. } => None,
            })
            .collect()
    }
}

/// Whether a slot's generation is the one `key` was issued for; keys packed into a `usize` keep
/// only the low bits of the generation, so only those are compared.
fn same_generation(generation: u32, key: Key) -> bool {
    let mask = (usize::MAX >> INDEX_BITS) as u32;
    generation & mask == key.generation & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_the_new_entry() {
        let mut slab = Slab::new();
        let first = slab.insert("first").unwrap();
        assert_eq!(slab.remove(first), Some("first"));
        let second = slab.insert("second").unwrap();
        assert_eq!(first.index(), second.index(), "the slot is reused");
        assert_eq!(slab.get(first), None);
        assert_eq!(slab.remove(first), None);
        assert_eq!(slab.get(second), Some(&"second"));
    }

    #[test]
    fn keys_survive_packing() {
        let mut slab = Slab::new();
        let mut keys = Vec::new();
        for round in 0..5 {
            let key = slab.insert(round).unwrap();
            keys.push(key);
            if round % 2 == 0 {
                slab.remove(key);
            }
        }
        for key in keys {
            assert_eq!(Key::from_usize(key.to_usize()), key);
        }
        assert_ne!(Key::from_usize(usize::MAX).index(), 0);
    }

    #[test]
    fn keys_lists_only_occupied_slots() {
        let mut slab = Slab::new();
        let a = slab.insert(1).unwrap();
        let b = slab.insert(2).unwrap();
        let c = slab.insert(3).unwrap();
        slab.remove(b);
        assert_eq!(slab.keys(), vec![a, c]);
        *slab.get_mut(a).unwrap() += 10;
        assert_eq!(slab.get(a), Some(&11));
    }
}
