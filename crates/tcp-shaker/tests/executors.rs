//! The futures work on any executor: tokio (both flavours), pollster, and a hand-rolled one.

use crate::common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tcp_shaker::{Checker, Outcome};

#[test]
fn under_pollster() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    let report = pollster::block_on(
        checker.check_async(listener.local_addr().unwrap(), Duration::from_secs(5)),
    );
    assert!(report.unwrap().is_open());
    let closed =
        pollster::block_on(checker.check_async(common::closed_address(), Duration::from_secs(5)));
    assert_eq!(closed.unwrap().outcome(), Outcome::Closed);
}

#[tokio::test]
async fn under_tokio_current_thread() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    let address = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(
        checker.check_async(address, Duration::from_secs(5)),
        checker.check_every_address_async(address, Duration::from_secs(5)),
    );
    assert!(a.unwrap().is_open());
    let every = b.unwrap();
    assert_eq!(every.len(), 1);
    assert!(every[0].as_ref().unwrap().is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tokio_multi_thread_with_a_timeout_around_it() {
    let silent = common::SilentListener::new();
    let checker = Checker::new().unwrap();
    let check = checker.check_async(silent.address, Duration::from_secs(30));
    // The outer timeout drops the check, which cancels it.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), check)
            .await
            .is_err()
    );
    let report = checker
        .check_async(silent.address, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(report.outcome(), Outcome::TimedOut);
}

/// Counts wake-ups, to show that a future re-polled with the same waker is woken once.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn under_a_minimal_executor_woken_exactly_once() {
    let listener = common::open_listener();
    let checker = Checker::new().unwrap();
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let mut check =
        pin!(checker.check_async(listener.local_addr().unwrap(), Duration::from_secs(5)));
    let mut polls = 0;
    let report = loop {
        polls += 1;
        if let Poll::Ready(result) = check.as_mut().poll(&mut cx) {
            break result.unwrap();
        }
        // Wait for the wake-up, as an executor would.
        while counter.0.load(Ordering::SeqCst) < polls {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    assert!(report.is_open());
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "one result, one wake-up"
    );
}
