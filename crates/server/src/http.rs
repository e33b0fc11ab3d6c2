//! The HTTP side: the WebSocket endpoint `/session`, the console, and the
//! checks every request passes (Host against DNS rebinding, Origin against
//! cross-site pages, frame and content policies).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::server::Shared;

/// The content policy of every answer: the page's own scripts, styles and
/// WebSocket only; never framed.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the checks need to know.
#[derive(Clone)]
pub(crate) struct Web {
    pub(crate) shared: Arc<Shared>,
    allowed_hosts: Arc<Vec<String>>,
    allowed_origins: Arc<Vec<String>>,
}

pub(crate) fn router(shared: Arc<Shared>, config: Arc<Config>, local: SocketAddr) -> Router {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "[::1]".to_owned(),
        host_of_ip(local),
    ];
    hosts.extend(
        config
            .server
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase()),
    );
    let web = Web {
        shared,
        allowed_hosts: Arc::new(hosts),
        allowed_origins: Arc::new(
            config
                .server
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        ),
    };
    let mut router = Router::new()
        .route("/session", get(session))
        .route("/", get(|| asset(INDEX_HTML, "text/html; charset=utf-8")))
        .route("/console.js", get(|| asset(CONSOLE_JS, JS)))
        .route(
            "/console.css",
            get(|| asset(CONSOLE_CSS, "text/css; charset=utf-8")),
        )
        .route("/session-filter.js", get(|| asset(CLIENT_JS, JS)))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }));
    if config.metrics.listen.is_none() {
        router = router.route(
            "/metrics",
            get(crate::prometheus::local_only).with_state(web.shared.clone()),
        );
    }
    router
        .layer(axum::middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web)
}

fn host_of_ip(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// The host name of a `Host` header (without its port), lower-cased.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => host[..=i].to_owned(),
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_owned(),
        _ => host,
    }
}

/// Why a request is refused, if it is.
pub(crate) fn check_request(
    headers: &HeaderMap,
    allowed_hosts: &[String],
    allowed_origins: &[String],
) -> Result<(), (StatusCode, &'static str)> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !allowed_hosts.contains(&host_name(host)) {
        return Err((
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that Host (set [server] allowed_hosts)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let same = [
            format!("http://{}", host.to_ascii_lowercase()),
            format!("https://{}", host.to_ascii_lowercase()),
        ];
        if !same.contains(&origin) && !allowed_origins.contains(&origin) {
            return Err((
                StatusCode::FORBIDDEN,
                "cross-origin request refused (set [server] allowed_origins)",
            ));
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err((StatusCode::FORBIDDEN, "cross-site request refused"));
    }
    Ok(())
}

async fn guard(
    State(web): State<Web>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err((status, message)) =
        check_request(request.headers(), &web.allowed_hosts, &web.allowed_origins)
    {
        return with_policy((status, message).into_response());
    }
    with_policy(next.run(request).await)
}

fn with_policy(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn session(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max = web.shared.config.max_message_bytes;
    let shared = web.shared.clone();
    upgrade
        // Small buffers: an idle connection keeps its read buffer, so 512
        // bytes, not 128 KiB (tungstenite's default) or 2 KiB; a request
        // is usually shorter, and a longer one is read 512 bytes a call.
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| crate::connection::run(shared, socket, peer))
}

// The console (SPEC 11.8): the JavaScript client and a page built on it,
// embedded so the server needs no files beside it.
const INDEX_HTML: &str = include_str!("../../../clients/js/console/index.html");
const CONSOLE_JS: &str = include_str!("../../../clients/js/console/console.js");
const CONSOLE_CSS: &str = include_str!("../../../clients/js/console/console.css");
const CLIENT_JS: &str = include_str!("../../../clients/js/session-filter.js");
const JS: &str = "text/javascript; charset=utf-8";

async fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn host_and_origin() {
        let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let ok = |h: &HeaderMap| check_request(h, &hosts, &[]).map_err(|e| e.0);
        assert_eq!(ok(&headers(&[("host", "127.0.0.1:8080")])), Ok(()));
        assert_eq!(
            ok(&headers(&[("host", "attacker.example:8080")])),
            Err(StatusCode::MISDIRECTED_REQUEST)
        );
        assert_eq!(
            ok(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:8080")
            ])),
            Ok(())
        );
        assert_eq!(
            ok(&headers(&[
                ("host", "localhost:8080"),
                ("origin", "https://evil.example")
            ])),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            ok(&headers(&[
                ("host", "localhost:8080"),
                ("sec-fetch-site", "cross-site")
            ])),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(host_name("[::1]:80"), "[::1]");
    }
}
