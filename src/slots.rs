//! A table whose entries keep their index while they live, and whose freed indices are reused:
//! the scheduler's targets in play, so that a long single pass holds only the targets being
//! checked.

/// Entries addressed by index; removing one frees its index for the next insertion.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Stores `value`; returns its index.
    pub fn insert(&mut self, value: T) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.entries[index] = Some(value);
                index
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.entries.get(index).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.entries.get_mut(index).and_then(Option::as_mut)
    }

    /// Removes the entry at `index`, if any.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        let value = self.entries.get_mut(index)?.take()?;
        self.free.push(index);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_stable_and_reused_once_free() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        let b = slots.insert("b");
        assert_eq!(slots.remove(a), Some("a"));
        assert_eq!(slots.remove(a), None);
        assert_eq!(slots.get(b), Some(&"b"));
        let c = slots.insert("c");
        assert_eq!(c, a);
        if let Some(value) = slots.get_mut(c) {
            *value = "d";
        }
        assert_eq!(slots.get(c), Some(&"d"));
        assert_eq!(slots.get(99), None);
    }
}
