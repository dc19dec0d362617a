//! The status page (`/`, with its script and style, embedded in the binary: no network needed
//! to show it) and the badges (`/badge/{target}.svg`, `/badge/{target}/uptime.svg`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::service::Service;

/// The page, its script and its style.
const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// `/`.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `/page.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `/page.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/badge/{path}`: `NAME.svg`, the target's state; `NAME/uptime.svg`, its uptime over the
/// last day.
pub fn badge(service: &Service, path: &str) -> Response {
    let (name, uptime) = match path.strip_suffix("/uptime.svg") {
        Some(name) => (name, true),
        None => match path.strip_suffix(".svg") {
            Some(name) => (name, false),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "a badge is /badge/{target}.svg or /badge/{target}/uptime.svg\n",
                )
                    .into_response();
            }
        },
    };
    let current = service.current();
    let Some(id) = current.id_of(name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no target is named {name:?}; /api/targets lists them\n"),
        )
            .into_response();
    };
    let (value, colour) = if uptime {
        match service.history.uptime_day(id) {
            Some(ratio) => (format!("{:.2}%", ratio * 100.0), uptime_colour(ratio)),
            None => ("no checks".to_owned(), GREY),
        }
    } else {
        match service.monitor.status(id) {
            Some(status) => {
                let text = status.health.to_string();
                let colour = if status.health.is_up() { GREEN } else { RED };
                (text, colour)
            }
            None => ("unknown".to_owned(), GREY),
        }
    };
    let label = if uptime { "uptime 24h" } else { name };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        svg(label, &value, colour),
    )
        .into_response()
}

const GREEN: &str = "#2e7d32";
const RED: &str = "#c62828";
const AMBER: &str = "#b26a00";
const GREY: &str = "#616161";

fn uptime_colour(ratio: f64) -> &'static str {
    if ratio >= 0.999 {
        GREEN
    } else if ratio >= 0.99 {
        AMBER
    } else {
        RED
    }
}

/// A badge: `label` on grey, `value` on `colour`, both as text (readable without colour).
fn svg(label: &str, value: &str, colour: &str) -> String {
    // About 7 px a character of 11 px Verdana, plus padding.
    let width = |text: &str| 10 + 7 * text.chars().count();
    let (left, right) = (width(label), width(value));
    let total = left + right;
    let (label, value) = (escape(label), escape(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="{lx}" y="14">{label}</text><text x="{rx}" y="14">{value}</text></g></svg>"##,
        lx = left / 2,
        rx = left + right / 2,
    )
}

/// Text made safe for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_says_its_state_in_text_and_escapes_names() {
        let badge = svg("a<b>&\"c", "DOWN 1/2", RED);
        assert!(
            badge.contains("a&lt;b&gt;&amp;&quot;c: DOWN 1/2"),
            "{badge}"
        );
        assert!(badge.contains(">DOWN 1/2</text>"), "{badge}");
        assert!(!badge.contains("a<b>"), "{badge}");
    }
}
