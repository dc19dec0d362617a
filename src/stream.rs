//! The targets of a run, one at a time: each spec of the [`Feed`] expanded port by port as the
//! scheduler asks, each host and port given once however often it is written.

use std::time::Instant;

use tcp_shaker::Target;

use crate::feed::{Feed, FeedItem, Next};
use crate::targets::{InvalidTarget, SpecTargets};
use crate::unique::{HostId, Seen};

/// What [`TargetStream::pull`] found.
#[derive(Debug)]
pub enum Pull {
    /// A target not seen before.
    Target(Target),
    Invalid(InvalidTarget),
    /// The targets could not be read to their end (the message says why); nothing follows.
    Failed(String),
    /// Nothing yet: the files are still being read.
    NotYet,
    /// Every target has been taken.
    Ended,
}

/// The targets of a [`Feed`], without duplicates.
pub struct TargetStream {
    feed: Feed,
    /// The spec being expanded, and its host.
    current: Option<(SpecTargets, HostId)>,
    seen: Seen,
}

impl TargetStream {
    pub fn new(feed: Feed) -> TargetStream {
        TargetStream {
            feed,
            current: None,
            seen: Seen::default(),
        }
    }

    /// The next target, refusal or end, without waiting.
    pub fn pull(&mut self) -> Pull {
        loop {
            if let Some((targets, host)) = &mut self.current {
                for target in targets.by_ref() {
                    if self.seen.first_time(*host, target.port()) {
                        return Pull::Target(target);
                    }
                }
                self.current = None;
            }
            match self.feed.next() {
                Next::Item(FeedItem::Spec(spec)) => {
                    let host = self.seen.host(spec.first());
                    self.current = Some((spec.into_targets(), host));
                }
                Next::Item(FeedItem::Invalid(invalid)) => return Pull::Invalid(invalid),
                Next::Item(FeedItem::Failed(message)) => return Pull::Failed(message),
                Next::NotYet => return Pull::NotYet,
                Next::Ended => return Pull::Ended,
            }
        }
    }

    /// Waits until `until` at most for [`pull`](TargetStream::pull) to have something to say.
    pub fn wait(&mut self, until: Instant) {
        if self.current.is_none() {
            self.feed.wait(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tcp_shaker::Family;

    use crate::targets::parse_spec;

    #[test]
    fn duplicates_within_and_across_specs_are_dropped() {
        let specs = ["db:80,80,81", "cache:80", "db:79-81"]
            .iter()
            .map(|spec| parse_spec(spec, Family::Any).unwrap())
            .collect();
        let mut stream = TargetStream::new(Feed::start(specs, Vec::new(), Family::Any).unwrap());
        let mut targets = Vec::new();
        while let Pull::Target(target) = stream.pull() {
            targets.push(target.to_string());
        }
        assert_eq!(targets, ["db:80", "db:81", "cache:80", "db:79"]);
        assert!(matches!(stream.pull(), Pull::Ended));
    }
}
