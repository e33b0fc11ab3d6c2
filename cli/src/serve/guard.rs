//! What every request to the console must pass before a route sees it, and
//! the headers every answer carries: the defences against other web sites.
//!
//! A browser lets any page send requests to `http://127.0.0.1:8080`, so a
//! console that answered everything would let any site close every session
//! (a `text/plain` form POST needs no preflight) or, through DNS
//! rebinding (`attacker.example` resolving to 127.0.0.1), read every
//! session. The checks, in order:
//!
//! 1. [`check_host`]: the `Host` header (and the request target's authority,
//!    if it has one) names this server: its bound address, `localhost:PORT`,
//!    `127.0.0.1:PORT`, or a host the operator allowed. Otherwise 421: a
//!    rebound name never matches.
//! 2. [`check_origin`]: an `Origin` header, when present, is this server's
//!    own origin, and `Sec-Fetch-Site` is not `cross-site`. Otherwise 403.
//! 3. [`check_content_type`]: a POST carries `Content-Type:
//!    application/json`, which a page of another origin cannot send without
//!    a CORS preflight that this server never grants. Otherwise 415.
//!
//! [`secure_headers`] then frames nothing (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`) and lets the page run only its own script and
//! style. The checks are plain functions over [`HeaderMap`] so that another
//! server (the session server) can apply the same ones; [`layer`] is the
//! axum middleware that applies them here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The page may load its own script, style and images and call its own
/// API; nothing inline, nothing from elsewhere, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";

/// The hosts (`name:port`, lower case) and origins a request may name.
#[derive(Debug, Clone)]
pub struct Allowed {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Allowed {
    /// For a server bound to `bound`: its own address, `localhost` and
    /// `127.0.0.1` on its port, and each of `extra` (`HOST` or
    /// `HOST:PORT`; without a port, the server's).
    pub fn new(bound: SocketAddr, extra: &[String]) -> Allowed {
        let port = bound.port();
        let mut hosts = vec![
            bound.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
        ];
        for host in extra {
            let host = host.trim().to_ascii_lowercase();
            hosts.push(if has_port(&host) {
                host
            } else {
                format!("{host}:{port}")
            });
        }
        // On port 80 a browser leaves the port out of `Host` and `Origin`.
        if port == 80 {
            let bare: Vec<String> = hosts
                .iter()
                .filter_map(|h| h.strip_suffix(":80").map(str::to_owned))
                .collect();
            hosts.extend(bare);
        }
        let mut deduplicated = Vec::with_capacity(hosts.len());
        for host in hosts {
            if !deduplicated.contains(&host) {
                deduplicated.push(host);
            }
        }
        let origins = deduplicated
            .iter()
            .map(|host| format!("http://{host}"))
            .collect();
        Allowed {
            hosts: deduplicated,
            origins,
        }
    }

    /// The allowed hosts, `name:port`.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Whether `host` (`name:port`, any case) is allowed.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `origin` (`http://name:port`, any case) is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Whether `host` ends in `:PORT` (an IPv6 literal is bracketed).
fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        Some((name, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']'))
        }
        None => false,
    }
}

/// Why a request was refused: its status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 421, 403 or 415.
    pub status: StatusCode,
    /// What was wrong, for the client.
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        secure_headers(response.headers_mut());
        response
    }
}

/// The `Host` header must name an allowed host (421 otherwise); so must
/// `authority`, the request target's, when it has one.
pub fn check_host(
    headers: &HeaderMap,
    authority: Option<&str>,
    allowed: &Allowed,
) -> Result<(), Refusal> {
    let misdirected = |what: &str| {
        Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "{what}: this server answers only for {} (start it with --allow-host to add a name)",
                allowed.hosts().join(", ")
            ),
        )
    };
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host,
        (None, _) => return Err(misdirected("the request has no Host header")),
        (Some(_), Some(_)) => return Err(misdirected("the request has two Host headers")),
    };
    match host.to_str() {
        Ok(host) if allowed.allows_host(host) => {}
        Ok(host) => return Err(misdirected(&format!("unknown host {host:?}"))),
        Err(_) => return Err(misdirected("the Host header is not ASCII")),
    }
    match authority {
        Some(authority) if !allowed.allows_host(authority) => Err(misdirected(&format!(
            "unknown host {authority:?} in the request target"
        ))),
        _ => Ok(()),
    }
}

/// A request from another site is refused (403): one whose `Origin` is not
/// an allowed origin (`null` included), or whose `Sec-Fetch-Site` is
/// `cross-site`. A request without either (curl, a same-origin GET) passes.
pub fn check_origin(headers: &HeaderMap, allowed: &Allowed) -> Result<(), Refusal> {
    let forbidden = |message: String| Refusal::new(StatusCode::FORBIDDEN, message);
    for origin in headers.get_all(header::ORIGIN) {
        match origin.to_str() {
            Ok(origin) if allowed.allows_origin(origin) => {}
            Ok(origin) => {
                return Err(forbidden(format!(
                    "cross-origin requests are refused (Origin {origin:?})"
                )))
            }
            Err(_) => return Err(forbidden("the Origin header is not ASCII".into())),
        }
    }
    let site = HeaderName::from_static("sec-fetch-site");
    for value in headers.get_all(&site) {
        if value.as_bytes().eq_ignore_ascii_case(b"cross-site") {
            return Err(forbidden(
                "cross-site requests are refused (Sec-Fetch-Site: cross-site)".into(),
            ));
        }
    }
    Ok(())
}

/// A POST must say `Content-Type: application/json` (parameters such as
/// `charset` allowed); 415 otherwise. Other methods pass.
pub fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if method != Method::POST {
        return Ok(());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST must have Content-Type: application/json",
        ))
    }
}

/// All three checks, in the order the module docs give.
pub fn check(
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    allowed: &Allowed,
) -> Result<(), Refusal> {
    check_host(headers, authority, allowed)?;
    check_origin(headers, allowed)?;
    check_content_type(method, headers)
}

/// Adds the headers every answer carries: no framing, the
/// [`CONTENT_SECURITY_POLICY`], no type sniffing, no referrer.
pub fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The middleware: refuses what [`check`] refuses, and adds
/// [`secure_headers`] to every answer.
pub async fn layer(State(allowed): State<Arc<Allowed>>, request: Request, next: Next) -> Response {
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    if let Err(refusal) = check(
        request.method(),
        request.headers(),
        authority.as_deref(),
        &allowed,
    ) {
        return refusal.into_response();
    }
    let mut response = next.run(request).await;
    secure_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn allowed() -> Allowed {
        let bound: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        Allowed::new(bound, &["Console.Example".into(), "[::1]:9000".into()])
    }

    #[test]
    fn hosts_are_the_bound_address_loopback_names_and_the_named_ones() {
        let allowed = allowed();
        assert_eq!(
            allowed.hosts(),
            [
                "127.0.0.1:8080",
                "localhost:8080",
                "console.example:8080",
                "[::1]:9000"
            ]
        );
        for host in ["LOCALHOST:8080", "console.example:8080", "[::1]:9000"] {
            assert!(allowed.allows_host(host), "{host}");
        }
        for host in ["localhost", "localhost:8081", "attacker.example:8080", ""] {
            assert!(!allowed.allows_host(host), "{host}");
        }
        let v6: SocketAddr = "[::1]:80".parse().expect("address");
        let on_80 = Allowed::new(v6, &["example.org".into()]);
        for host in ["[::1]:80", "[::1]", "localhost", "example.org"] {
            assert!(on_80.allows_host(host), "{host}");
        }
        assert!(on_80.allows_origin("http://localhost"));
    }

    #[test]
    fn host_check() {
        let allowed = allowed();
        assert_eq!(
            check_host(&headers(&[("host", "localhost:8080")]), None, &allowed),
            Ok(())
        );
        for map in [
            headers(&[]),
            headers(&[("host", "attacker.example:8080")]),
            headers(&[("host", "localhost:8080"), ("host", "evil:8080")]),
        ] {
            let refusal = check_host(&map, None, &allowed).expect_err("refused");
            assert_eq!(refusal.status, StatusCode::MISDIRECTED_REQUEST);
        }
        let ok = headers(&[("host", "localhost:8080")]);
        assert!(check_host(&ok, Some("evil:8080"), &allowed).is_err());
        assert!(check_host(&ok, Some("127.0.0.1:8080"), &allowed).is_ok());
    }

    #[test]
    fn origin_check() {
        let allowed = allowed();
        for map in [
            headers(&[]),
            headers(&[("origin", "http://localhost:8080")]),
            headers(&[("sec-fetch-site", "same-origin")]),
            headers(&[("sec-fetch-site", "none")]),
        ] {
            assert_eq!(check_origin(&map, &allowed), Ok(()), "{map:?}");
        }
        for map in [
            headers(&[("origin", "https://attacker.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://localhost:8081")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[
                ("origin", "http://localhost:8080"),
                ("sec-fetch-site", "Cross-Site"),
            ]),
        ] {
            let refusal = check_origin(&map, &allowed).expect_err("refused");
            assert_eq!(refusal.status, StatusCode::FORBIDDEN, "{map:?}");
        }
    }

    #[test]
    fn content_type_check() {
        for value in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;x=y",
        ] {
            let mut map = HeaderMap::new();
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("value"),
            );
            assert_eq!(check_content_type(&Method::POST, &map), Ok(()), "{value}");
        }
        for map in [
            headers(&[]),
            headers(&[("content-type", "text/plain")]),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
            headers(&[("content-type", "multipart/form-data; boundary=x")]),
            headers(&[("content-type", "application/jsonx")]),
        ] {
            let refusal = check_content_type(&Method::POST, &map).expect_err("refused");
            assert_eq!(refusal.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert_eq!(check_content_type(&Method::GET, &headers(&[])), Ok(()));
    }
}
