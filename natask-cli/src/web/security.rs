//! Who may use the dashboard and how state changes are protected.
//!
//! - The listen address is loopback unless `--allow-remote` says otherwise.
//! - With `--web-token`, every request needs the token: once as `?token=`
//!   (answered by a redirect that sets an HttpOnly, SameSite=Strict cookie
//!   holding a hash of it, so the token leaves the address bar), or as
//!   `Authorization: Bearer`.
//! - GET never changes anything. A POST needs the per-process CSRF token
//!   that every form carries as a hidden field, and is refused when its
//!   `Sec-Fetch-Site` or `Origin` says it comes from another site.
//!
//! Every comparison of a secret is constant-time.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::html::{escape, page};
use super::App;

/// The cookie that carries the token's hash after a `?token=` login.
const COOKIE: &str = "natask_web";

/// The largest form body read (forms here carry a token and a name or two).
const FORM_LIMIT: usize = 16 * 1024;

/// The secrets of one `natask web` process.
pub(crate) struct Guard {
    /// The hash of `--web-token` (hex), if one is required.
    token_hash: Option<String>,
    /// The CSRF token every form carries (hex, 32 random bytes).
    pub(crate) csrf: String,
}

impl Guard {
    pub(crate) fn new(token: Option<&str>) -> Guard {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Guard {
            token_hash: token.map(hash),
            csrf: hex(&bytes),
        }
    }

    /// Whether `request` carries the token (always, when none is required).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(wanted) = &self.token_hash else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| hash(t.trim()));
        let cookie = cookie(headers, COOKIE);
        [bearer, cookie]
            .into_iter()
            .flatten()
            .any(|given| same(given.as_bytes(), wanted.as_bytes()))
    }

    /// Whether `token` (a `?token=` value) is the token.
    fn is_token(&self, token: &str) -> bool {
        self.token_hash
            .as_ref()
            .is_some_and(|wanted| same(hash(token).as_bytes(), wanted.as_bytes()))
    }
}

/// SHA-256 of `token`, hex.
fn hash(token: &str) -> String {
    hex(&Sha256::digest(format!("natask-web:{token}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that depends on their length only.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`, if the request has it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Content-Security-Policy`: nothing from elsewhere, inline style,
/// and only the one inline script whose hash is `script`.
pub(crate) fn policy(script: Option<&str>) -> HeaderValue {
    let script = match script {
        Some(s) => format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
        ),
        None => "'none'".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src {script}; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// A refusal as a small page.
fn refuse(status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"error\" id=\"refused\">{}</p>", escape(message));
    (
        status,
        axum::response::Html(page(status.as_str(), "", None, &body, None)),
    )
        .into_response()
}

/// The middleware: token gate, then the cross-site checks on POST, then
/// the headers every answer carries.
pub(crate) async fn gate(
    State(app): State<std::sync::Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match check(&app, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, app.policy.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn check(app: &App, request: Request) -> Result<Request, Response> {
    let guard = &app.guard;
    if !guard.admits(request.headers()) {
        return Err(login(guard, &request));
    }
    if request.method() != Method::POST {
        return Ok(request);
    }
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: a request from another site may not change anything",
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // `https://` too: behind a proxy that terminates TLS and keeps `Host`.
        let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
        let ours = host.is_some_and(|h| {
            [b"http://".as_slice(), b"https://"]
                .iter()
                .any(|scheme| origin.as_bytes() == [*scheme, h].concat())
        });
        if !ours {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: the request's Origin is not this dashboard",
            ));
        }
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?;
    let given = form_field(&bytes, "csrf");
    if !given.is_some_and(|t| same(t.as_bytes(), guard.csrf.as_bytes())) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or wrong; reload the page and try again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A `?token=` login (a redirect that sets the cookie), or 401.
fn login(guard: &Guard, request: &Request) -> Response {
    let uri = request.uri();
    let query = uri.query().unwrap_or_default();
    let token = form_field(query.as_bytes(), "token");
    if request.method() == Method::GET && token.as_deref().is_some_and(|t| guard.is_token(t)) {
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.starts_with("token="))
            .collect();
        let location = if rest.is_empty() {
            uri.path().to_owned()
        } else {
            format!("{}?{}", uri.path(), rest.join("&"))
        };
        let hash = guard.token_hash.as_deref().unwrap_or_default();
        let cookie = format!("{COOKIE}={hash}; Path=/; HttpOnly; SameSite=Strict");
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let (Ok(location), Ok(cookie)) = (
            HeaderValue::from_str(&location),
            HeaderValue::from_str(&cookie),
        ) {
            response.headers_mut().insert(header::LOCATION, location);
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return response;
    }
    refuse(
        StatusCode::UNAUTHORIZED,
        "this dashboard needs its token: open it once as /?token=TOKEN \
         (a cookie then keeps you in), or send Authorization: Bearer TOKEN",
    )
}

/// One field of an `application/x-www-form-urlencoded` body or query.
fn form_field(bytes: &[u8], name: &str) -> Option<String> {
    url_decoded_pairs(bytes)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn url_decoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &[u8]| {
        let plus: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&plus)
            .decode_utf8_lossy()
            .into_owned()
    };
    bytes
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let name = halves.next().unwrap_or_default();
            let value = halves.next().unwrap_or_default();
            (decode(name), decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field(b"a=1&csrf=x%2By+z&b", "csrf").as_deref(),
            Some("x+y z")
        );
        assert_eq!(form_field(b"a=1", "csrf"), None);
    }

    #[test]
    fn a_guard_without_a_token_admits_all_and_one_with_a_token_checks_it() {
        let open = Guard::new(None);
        assert!(open.admits(&HeaderMap::new()));
        assert_eq!(open.csrf.len(), 64);
        assert_ne!(open.csrf, Guard::new(None).csrf, "random per process");

        let closed = Guard::new(Some("s3cret"));
        assert!(!closed.admits(&HeaderMap::new()));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(closed.admits(&bearer));
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cre"),
        );
        assert!(!closed.admits(&wrong));
        let mut cookie = HeaderMap::new();
        let value = format!("other=1; {COOKIE}={}", hash("s3cret"));
        cookie.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert!(closed.admits(&cookie));
        assert!(closed.is_token("s3cret") && !closed.is_token("s3cret "));
    }

    #[test]
    fn the_policy_allows_the_one_script_by_its_hash() {
        // printf x | openssl dgst -sha256 -binary | base64
        let policy = policy(Some("x"));
        let policy = policy.to_str().unwrap();
        assert!(
            policy.contains("script-src 'sha256-LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE='"),
            "{policy}"
        );
        assert!(policy.contains("default-src 'none'"), "{policy}");
        let none = policy_none();
        assert!(none.contains("script-src 'none'"), "{none}");
    }

    fn policy_none() -> String {
        policy(None).to_str().unwrap().to_owned()
    }
}
