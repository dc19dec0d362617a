//! A short list that holds one item without allocating.
//!
//! A check has one address and one socket unless a host name resolves to several; the common
//! case must not cost a heap allocation per check.

use std::slice;

pub(crate) enum Few<T> {
    Empty,
    One(T),
    Many(Vec<T>),
}

impl<T: Copy + PartialEq> Few<T> {
    pub(crate) fn push(&mut self, item: T) {
        *self = match std::mem::replace(self, Few::Empty) {
            Few::Empty => Few::One(item),
            Few::One(first) => Few::Many(vec![first, item]),
            Few::Many(mut items) => {
                items.push(item);
                Few::Many(items)
            }
        };
    }

    /// Removes the first item equal to `item`, if any.
    pub(crate) fn remove(&mut self, item: T) {
        match self {
            Few::One(only) if *only == item => *self = Few::Empty,
            Few::Many(items) => {
                if let Some(at) = items.iter().position(|&other| other == item) {
                    items.remove(at);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Few::Empty => &[],
            Few::One(item) => slice::from_ref(item),
            Few::Many(items) => items,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_in_order() {
        let mut few = Few::Empty;
        assert!(few.is_empty());
        few.push(1);
        assert_eq!(few.as_slice(), &[1]);
        few.remove(1);
        assert!(few.is_empty());
        for item in [1, 2, 3, 2] {
            few.push(item);
        }
        few.remove(2);
        few.remove(9);
        assert_eq!(few.as_slice(), &[1, 3, 2]);
    }
}
