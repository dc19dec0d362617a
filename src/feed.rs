//! Where a run's specs come from, in order: the arguments (parsed when the run starts, so that
//! their errors come first), then each file, read on a thread of its own so that a slow pipe
//! never holds up the checks, a bounded number of lines ahead of them.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread;
use std::time::Instant;

use tcp_shaker::Family;

use crate::target_files::{Line, TargetFile};
use crate::targets::{InvalidTarget, Spec};

/// Lines read ahead of the checks, at most.
const LOOKAHEAD: usize = 256;

/// A spec, a refused spec, or the failure that ended the reading.
#[derive(Debug)]
pub enum FeedItem {
    Spec(Spec),
    Invalid(InvalidTarget),
    /// A file could not be read to its end (the message says which and why); nothing follows.
    Failed(String),
}

/// What [`Feed::next`] found.
#[derive(Debug)]
pub enum Next {
    Item(FeedItem),
    /// Nothing yet: the files are still being read.
    NotYet,
    /// Every spec has been taken.
    Ended,
}

/// The specs of a run, taken one at a time.
pub struct Feed {
    arguments: VecDeque<Spec>,
    /// Lines of the files, from the reading thread; `None` once it has ended.
    files: Option<Receiver<FeedItem>>,
    /// An item that [`Feed::wait`] received and [`Feed::next`] has not handed out yet.
    received: Option<FeedItem>,
}

impl Feed {
    /// The specs of `arguments`, then those of `files` (read on a new thread).
    pub fn start(arguments: Vec<Spec>, files: Vec<TargetFile>, family: Family) -> io::Result<Feed> {
        let files = if files.is_empty() {
            None
        } else {
            let (sender, receiver) = mpsc::sync_channel(LOOKAHEAD);
            thread::Builder::new()
                .name("targets".into())
                .spawn(move || read_files(files, family, &sender))?;
            Some(receiver)
        };
        Ok(Feed {
            arguments: arguments.into(),
            files,
            received: None,
        })
    }

    /// The next item, without waiting.
    pub fn next(&mut self) -> Next {
        if let Some(spec) = self.arguments.pop_front() {
            return Next::Item(FeedItem::Spec(spec));
        }
        if let Some(item) = self.received.take() {
            return Next::Item(item);
        }
        let Some(files) = &self.files else {
            return Next::Ended;
        };
        match files.try_recv() {
            Ok(item) => Next::Item(item),
            Err(TryRecvError::Empty) => Next::NotYet,
            Err(TryRecvError::Disconnected) => {
                self.files = None;
                Next::Ended
            }
        }
    }

    /// Waits until `until` at most for [`next`](Feed::next) to have something to say.
    pub fn wait(&mut self, until: Instant) {
        if !self.arguments.is_empty() || self.received.is_some() {
            return;
        }
        let Some(files) = &self.files else {
            return;
        };
        match files.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(item) => self.received = Some(item),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.files = None,
        }
    }
}

/// Sends the lines of every file in turn, until one cannot be read or the feed is dropped.
fn read_files(files: Vec<TargetFile>, family: Family, sender: &SyncSender<FeedItem>) {
    for file in files {
        let name = file.name.clone();
        let mut lines = file.lines(family);
        while let Some(line) = lines.next() {
            let item = match line {
                Ok(Line::Spec(spec)) => FeedItem::Spec(spec),
                Ok(Line::Invalid(invalid)) => FeedItem::Invalid(invalid),
                Err(error) => {
                    let message = format!("could not read the targets file {name}: {error}");
                    let _ = sender.send(FeedItem::Failed(message));
                    return;
                }
            };
            if sender.send(item).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::targets::parse_spec;

    #[test]
    fn arguments_come_first_then_nothing() {
        let spec = parse_spec("db:1", Family::Any).unwrap();
        let mut feed = Feed::start(vec![spec.clone()], Vec::new(), Family::Any).unwrap();
        assert!(matches!(feed.next(), Next::Item(FeedItem::Spec(s)) if s == spec));
        feed.wait(Instant::now() + Duration::from_secs(5));
        assert!(matches!(feed.next(), Next::Ended));
    }
}
