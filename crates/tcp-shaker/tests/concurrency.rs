//! Many checks at once, from many threads and tasks: every result belongs to its own target.

use crate::common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use tcp_shaker::{CheckOptions, Checker, Outcome, Report};
use tokio::task::JoinSet;

/// What each kind of target must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Open,
    Closed,
    TimedOut,
}

struct Targets {
    list: Vec<(SocketAddr, Expect)>,
    _open: Vec<std::net::TcpListener>,
    _silent: common::SilentListener,
}

impl Targets {
    fn new() -> Targets {
        let open: Vec<_> = (0..3).map(|_| common::open_listener()).collect();
        let silent = common::SilentListener::new();
        let mut list: Vec<_> = open
            .iter()
            .map(|l| (l.local_addr().unwrap(), Expect::Open))
            .collect();
        list.extend((0..3).map(|_| (common::closed_address(), Expect::Closed)));
        list.push((silent.address, Expect::TimedOut));
        Targets {
            list,
            _open: open,
            _silent: silent,
        }
    }

    /// The target for check number `n`, cycling through the kinds.
    fn nth(&self, n: usize) -> (SocketAddr, Expect) {
        self.list[n % self.list.len()]
    }
}

const TIMEOUT: Duration = Duration::from_millis(300);

/// The checks' options: thousands are submitted at once, so each may wait for the loop far
/// longer than its timeout before it starts (on a busy 2-core machine, seconds); that wait is not
/// what these tests are about.
fn options() -> CheckOptions {
    CheckOptions::new(TIMEOUT).start_within(Duration::from_secs(60))
}

fn verify(n: usize, address: SocketAddr, expect: Expect, report: &Report) {
    assert_eq!(
        report.address(),
        Some(address),
        "check {n} got another target's report"
    );
    let matches = matches!(
        (expect, report.outcome()),
        (Expect::Open, Outcome::Open { .. })
            | (Expect::Closed, Outcome::Closed)
            | (Expect::TimedOut, Outcome::TimedOut)
    );
    assert!(
        matches,
        "check {n} of {address}: expected {expect:?}, got {report:?}"
    );
}

/// Submits `checks` checks of the targets, all at once, through `batch`, and verifies that each
/// result comes back exactly once and belongs to its own target.
fn check_all_through(mut batch: tcp_shaker::Batch, targets: &Targets, checks: usize) {
    for n in 0..checks {
        let (address, _) = targets.nth(n);
        batch.submit(n as u64, address, options()).unwrap();
    }
    let mut seen = vec![false; checks];
    for completion in &mut batch {
        let n = completion.tag as usize;
        assert!(
            !std::mem::replace(&mut seen[n], true),
            "tag {n} completed twice"
        );
        let (address, expect) = targets.nth(n);
        verify(n, address, expect, &completion.result.unwrap());
    }
    assert!(
        seen.iter().all(|&s| s),
        "some batched checks never completed"
    );
}

#[test]
fn ten_thousand_mixed_checks_from_threads_futures_and_a_batch() {
    let targets = Targets::new();
    let checker = Checker::new().unwrap();
    const THREADS: usize = 48;
    const PER_THREAD: usize = 50;
    const FUTURES: usize = 3_000;
    const BATCHED: usize = 10_000 - THREADS * PER_THREAD - FUTURES;

    thread::scope(|scope| {
        // Blocking checks from many threads.
        for t in 0..THREADS {
            let (checker, targets) = (&checker, &targets);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let n = t * PER_THREAD + i;
                    let (address, expect) = targets.nth(n);
                    verify(
                        n,
                        address,
                        expect,
                        &checker.check(address, options()).unwrap(),
                    );
                }
            });
        }

        // Futures on a multi-threaded tokio runtime, all in flight together.
        let (checker, targets) = (&checker, &targets);
        scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut tasks = JoinSet::new();
                for n in 0..FUTURES {
                    let (address, expect) = targets.nth(n);
                    let check = checker.check_async(address, options());
                    tasks.spawn(async move { (n, address, expect, check.await) });
                }
                let mut done = 0;
                while let Some(joined) = tasks.join_next().await {
                    let (n, address, expect, result) = joined.unwrap();
                    verify(n, address, expect, &result.unwrap());
                    done += 1;
                }
                assert_eq!(done, FUTURES);
            });
        });

        // A batch with everything in flight at once, results matched by tag.
        scope.spawn(move || check_all_through(checker.batch(), targets, BATCHED));
    });
}

#[test]
fn a_batch_across_checkers_uses_every_loop_and_matches_every_result() {
    let targets = Targets::new();
    let checkers = [Checker::new().unwrap(), Checker::new().unwrap()];
    let batch = tcp_shaker::Batch::across(checkers.clone()).unwrap();
    check_all_through(batch, &targets, 2_000);
    // Both loops took part: stopping one fails only its half of the next checks.
    checkers[1].stop();
    let mut batch = tcp_shaker::Batch::across(checkers).unwrap();
    for n in 0..10 {
        batch.submit(n, targets.nth(0).0, options()).unwrap();
    }
    let stopped = batch
        .filter(|c| {
            c.result
                .as_ref()
                .is_err_and(|e| e.kind() == tcp_shaker::ErrorKind::Stopped)
        })
        .count();
    assert_eq!(stopped, 5);
    assert!(tcp_shaker::Batch::across(Vec::new()).is_none());
}
