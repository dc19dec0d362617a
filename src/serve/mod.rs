//! `tcp-checker serve`: targets checked continuously, with HAProxy's rise/fall state kept by
//! the library's [`tcp_shaker::health::Monitor`], served over HTTP for Prometheus, Kubernetes
//! and load balancers.
//!
//! The flags and the config file become a plan in [`plan`]; [`service`] runs it (and a reload
//! replaces it); [`http`] serves [`metrics`], [`probe`] and [`api`]. SIGHUP reloads the config
//! file, keeping the state of unchanged targets; SIGTERM and SIGINT stop the service, closing
//! every check in flight with RST, and exit 0.

mod allow;
mod api;
mod config;
mod history;
mod http;
mod log;
mod metrics;
mod outcome;
mod page;
mod plan;
mod probe;
mod service;
mod shard;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use self::log::Log;
pub use self::log::LogFormat;
use self::plan::ServePlan;
use self::service::Service;
use crate::args::ServeArgs;
use crate::check::status;

/// HTTP worker threads: the checks run on the checker's own event loop.
const HTTP_THREADS: usize = 2;

/// Runs the service until SIGTERM or SIGINT; the exit status.
pub fn run(args: Box<ServeArgs>) -> anyhow::Result<u8> {
    let plan = ServePlan::new(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_THREADS)
        .thread_name("tcp-checker-http")
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let result = runtime.block_on(serve(args, plan));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(args: Box<ServeArgs>, plan: ServePlan) -> anyhow::Result<u8> {
    // Handled before anything says the service is up, so that a signal sent the moment it
    // does is handled, not fatal.
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let listener = TcpListener::bind(plan.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: give another address with --listen (or listen in the config)",
            plan.listen
        )
    })?;
    let listening = listener.local_addr()?;
    let checker = plan.checker.spawn().context("cannot start the checker")?;
    let log = Log::new(plan.log);
    let (watched, configured) = (plan.targets.len(), plan.configured);
    let service = Arc::new(Service::start(checker, log, plan.targets, plan.probe));
    log.service(
        "started",
        &format!("serving http://{listening}/ with {watched} of {configured} configured targets"),
    );
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(http::serve(listener, Arc::clone(&service), stopped));
    let args: Arc<ServeArgs> = Arc::from(args);
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(Arc::clone(&args), Arc::clone(&service), listening).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    log.service(
        "stopping",
        "stopping: no new checks; the ones in flight end with RST",
    );
    let _ = stop.send(true);
    // Every check socket has zero linger, so stopping the checker resets them all.
    service.checker.stop();
    let _ = server.await;
    Ok(status::ALL_OPEN)
}

/// SIGHUP: the plan made again; put in force if it is valid, else the running one kept.
async fn reload(args: Arc<ServeArgs>, service: Arc<Service>, listening: std::net::SocketAddr) {
    let log = service.log;
    let Some(path) = args
        .service
        .config
        .as_ref()
        .map(|p| p.display().to_string())
    else {
        log.service(
            "reload_skipped",
            "SIGHUP: no --config file to read again; nothing changed",
        );
        return;
    };
    let planned = tokio::task::spawn_blocking(move || ServePlan::new(&args)).await;
    match planned {
        Ok(Ok(plan)) => {
            if plan.listen != listening {
                log.service(
                    "reload_listen_ignored",
                    &format!(
                        "{path}: listen {} takes a restart; still serving {listening}",
                        plan.listen
                    ),
                );
            }
            let changes = service.apply(plan.targets, plan.probe);
            service.metrics.reloaded(true);
            log.service(
                "reloaded",
                &format!(
                    "reloaded {path}: {} targets kept with their state, {} new, {} removed",
                    changes.kept, changes.added, changes.removed
                ),
            );
        }
        Ok(Err(error)) => {
            service.metrics.reloaded(false);
            log.service(
                "reload_refused",
                &format!("reload refused, the running config is kept: {error:#}"),
            );
        }
        Err(_) => {
            service.metrics.reloaded(false);
            log.service(
                "reload_refused",
                "reload failed unexpectedly; the running config is kept",
            );
        }
    }
}
