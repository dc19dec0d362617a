//! The HTTP side: the routes, and a server that bad clients cannot wear down (a limit on
//! connections, a deadline for a request's headers, a cap on their size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};

use super::api;
use super::metrics::Format;
use super::page;
use super::probe;
use super::service::Service;

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 4096;

/// The time a client has to send a request's headers (a client that sends a byte a second
/// is cut off then).
const HEADER_DEADLINE: Duration = Duration::from_secs(10);

/// The most a connection buffers of a request: its headers and query string.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What the handlers share.
#[derive(Debug)]
struct Shared {
    service: Arc<Service>,
    /// The last `/metrics` body, for scrapes that arrived while it was being rendered.
    rendered: Mutex<Option<Rendered>>,
}

/// A rendering of `/metrics`, and when it was done.
#[derive(Debug)]
struct Rendered {
    finished: Instant,
    format: Format,
    body: Bytes,
}

/// The routes of the service.
fn router(service: Arc<Service>) -> Router {
    let shared = Arc::new(Shared {
        service,
        rendered: Mutex::new(None),
    });
    Router::new()
        .route("/", get(page::index))
        .route("/page.js", get(page::script))
        .route("/page.css", get(page::style))
        .route("/badge/{*path}", get(badge))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe_target))
        .route("/health", get(health))
        .route("/health/{*name}", get(target_health))
        .route("/api/targets", get(targets))
        .fallback(not_found)
        .with_state(shared)
}

/// Serves `service` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let router = router(service);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            _ = stop.changed() => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, or a connection reset before it was accepted: try again
            // after a breath, rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .max_buf_size(MAX_REQUEST_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
            drop(permit);
        });
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "no such page; / is the status page, and the README lists every endpoint\n".into(),
    )
}

fn accept(headers: &HeaderMap) -> Format {
    Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let format = accept(&headers);
    let arrived = Instant::now();
    let mut rendered = shared.rendered.lock().await;
    // A rendering done after this scrape arrived (while it waited its turn) is at most one
    // rendering old: it serves this scrape too, so that concurrent scrapes cost one rendering.
    let fresh = rendered
        .as_ref()
        .filter(|last| last.finished >= arrived && last.format == format)
        .map(|last| last.body.clone());
    let body = match fresh {
        Some(body) => body,
        None => {
            let service = Arc::clone(&shared.service);
            let rendering = tokio::task::spawn_blocking(move || {
                service
                    .metrics
                    .set_in_flight(service.monitor.checks_in_flight());
                service.metrics.render(format)
            });
            let Ok(body) = rendering.await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "rendering the metrics failed\n".into(),
                );
            };
            let body = Bytes::from(body);
            let finished = Instant::now();
            *rendered = Some(Rendered {
                finished,
                format,
                body: body.clone(),
            });
            forget_later(Arc::clone(&shared), finished);
            body
        }
    };
    drop(rendered);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// Drops the kept rendering a second after it was done, unless a newer one replaced it: no
/// scrape waits that long for its turn, and the memory is the service's again.
fn forget_later(shared: Arc<Shared>, finished: Instant) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rendered = shared.rendered.lock().await;
        if rendered
            .as_ref()
            .is_some_and(|last| last.finished == finished)
        {
            *rendered = None;
        }
    });
}

async fn probe_target(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let settings = shared.service.current().probe.clone();
    let scrape_timeout = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok());
    let answer = probe::answer(
        &settings,
        &shared.service.checker,
        query.as_deref(),
        scrape_timeout,
        accept(&headers),
    )
    .await;
    let mut response = (answer.status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    response
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let (status, body) = api::overall_health(&shared.service);
    text(status, body)
}

async fn target_health(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let (status, body) = api::target_health(&shared.service, &name);
    text(status, body)
}

async fn badge(State(shared): State<Arc<Shared>>, Path(path): Path<String>) -> Response {
    page::badge(&shared.service, &path)
}

async fn targets(State(shared): State<Arc<Shared>>) -> Response {
    let service = Arc::clone(&shared.service);
    let Ok(body) = tokio::task::spawn_blocking(move || api::targets_json(&service)).await else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "listing the targets failed\n".into(),
        );
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
