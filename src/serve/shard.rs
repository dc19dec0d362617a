//! `--shard I/N`: which of the configured targets this instance checks, by rendezvous hashing.
//!
//! Each target goes to the instance whose index scores highest for the target's name. Every
//! instance computes the same scores, so N instances given one list split it with no
//! coordination; a target moves only when N changes, and then only to or from the instance
//! added or removed.

use std::fmt;
use std::str::FromStr;

/// This instance's share: index `index` of `count` instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// From 0 to `count - 1`.
    pub index: u32,
    /// At least 1.
    pub count: u32,
}

impl Shard {
    /// Whether the target named `name` is this instance's to check.
    pub fn keeps(self, name: &str) -> bool {
        let best = (0..self.count).max_by_key(|&instance| score(name, instance));
        best == Some(self.index)
    }
}

/// `I/N`, as `--shard` and the config's `shard` write it.
impl FromStr for Shard {
    type Err = String;

    /// `"0/3"`; a refusal says what is wrong and how a shard is written.
    fn from_str(text: &str) -> Result<Shard, String> {
        const FORM: &str = "write I/N: the shard's index I, from 0, and the number of shards N \
                            (e.g. 0/3)";
        let Some((index, count)) = text.split_once('/') else {
            return Err(FORM.to_owned());
        };
        let number = |part: &str, what: &str| {
            part.parse::<u32>().map_err(|_| {
                format!(
                    "the {what} {:?} is not a number; {FORM}",
                    crate::targets::shorten(part)
                )
            })
        };
        let (index, count) = (number(index, "index")?, number(count, "count")?);
        if count == 0 {
            return Err(format!(
                "the count is 0, and there is at least one shard; {FORM}"
            ));
        }
        if index >= count {
            return Err(format!(
                "the index {index} is not below the count {count} (indexes count from 0); {FORM}"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    /// `I/N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The score of `instance` for `name`: FNV-1a over both, then a finalising mix so that
/// neighbouring instances score independently. Stable across builds and platforms.
fn score(name: &str, instance: u32) -> u64 {
    let hash = name
        .bytes()
        .chain(instance.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    // splitmix64's finaliser.
    let hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (0..3000)
            .map(|n| format!("10.0.{}.{}:5432", n / 250, n % 250))
            .collect()
    }

    fn owner(name: &str, count: u32) -> u32 {
        (0..count)
            .find(|&index| Shard { index, count }.keeps(name))
            .expect("an owner")
    }

    #[test]
    fn every_target_has_exactly_one_instance_and_shares_are_even() {
        let count = 3;
        let mut shares = [0usize; 3];
        for name in names() {
            let owners: Vec<u32> = (0..count)
                .filter(|&index| Shard { index, count }.keeps(&name))
                .collect();
            assert_eq!(owners.len(), 1, "{name} is kept by {owners:?}");
            shares[owners[0] as usize] += 1;
        }
        // 1000 each on average; a fair hash stays well within ±15%.
        assert!(
            shares.iter().all(|&share| (850..=1150).contains(&share)),
            "{shares:?}"
        );
    }

    #[test]
    fn adding_an_instance_moves_targets_only_to_it() {
        for name in names() {
            let before = owner(&name, 3);
            let after = owner(&name, 4);
            assert!(
                after == before || after == 3,
                "{name} moved from {before} to {after}"
            );
        }
    }

    #[test]
    fn shards_are_written_index_slash_count() {
        for (text, shard) in [("0/1", (0, 1)), ("0/3", (0, 3)), ("2/3", (2, 3))] {
            let parsed = text.parse::<Shard>();
            assert_eq!(
                parsed,
                Ok(Shard {
                    index: shard.0,
                    count: shard.1
                })
            );
            assert_eq!(parsed.map(|shard| shard.to_string()).as_deref(), Ok(text));
        }
        for (text, says) in [
            ("3/3", "the index 3 is not below the count 3"),
            ("0/0", "the count is 0"),
            ("a/b", "the index \"a\" is not a number"),
            ("0/b", "the count \"b\" is not a number"),
            ("1", "write I/N"),
            ("-1/3", "is not a number"),
            ("1/2/3", "the count \"2/3\""),
        ] {
            let said = text.parse::<Shard>().unwrap_err();
            assert!(
                said.contains(says) && said.contains("e.g. 0/3"),
                "{text}: {said}"
            );
        }
    }

    #[test]
    fn one_instance_keeps_everything() {
        assert!(
            names()
                .iter()
                .all(|name| Shard { index: 0, count: 1 }.keeps(name))
        );
    }
}
