//! The web panel (`web/`, built into `web/dist` by `npm run build`) served at `/`.
//!
//! It is the router's fallback: every API route is matched first, and the paths the API owns
//! (`/apis/…`, `/auth/…`, `/openapi/…`, …) keep answering a JSON 404 Status when nothing matches,
//! so API clients never get HTML. Everything else that is a GET or HEAD is the panel: a file of
//! the build, or `index.html` for the panel's own routes (`/gameservers/default/web`).
//!
//! Release builds carry the files in the binary; debug builds read them from `web/dist` at run
//! time (rust-embed's rule), so a `cargo test` run sees what `npm run build` last wrote. Without
//! a build the panel answers a short page saying how to make one; the API works either way.
//!
//! Hashed assets (`/assets/…`) are cached for a year; `index.html` is revalidated every time
//! (`no-cache` with an `ETag`). A `.br` or `.gz` twin written by the build is sent instead of the
//! file when the client accepts it.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Dist;

/// Path prefixes that belong to the API: an unknown path under them is a JSON 404, never the
/// panel.
const API_PREFIXES: &[&str] = &[
    "/apis", "/api", "/auth", "/openapi", "/convert", "/metrics", "/healthz", "/readyz",
    "/version", "/cacerts",
];

/// The Content-Security-Policy of every panel answer. Monaco and xterm set inline styles, and
/// Monaco's language workers start from `blob:` URLs.
const CSP: &str = "default-src 'self'; connect-src 'self'; script-src 'self'; \
    worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
    font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'self'";

/// The router's fallback: the panel for GETs and HEADs outside the API, the API's own 404 or
/// 405 otherwise.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_api_path(path) {
        return not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed(format!("{method} is not allowed on this path"))
            .into_response();
    }
    // hyper sends no body for HEAD, with the GET's length
    serve(path, &headers)
}

fn not_found() -> Response {
    ApiError::NotFound {
        kind: "path".into(),
        name: String::new(),
    }
    .into_response()
}

/// Whether `path` is under one of the API's prefixes (`/apis` and `/apis/x`, not `/apisx`).
fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether any file of the panel is there (a build was made).
pub fn is_built() -> bool {
    Dist::get("index.html").is_some()
}

/// Whether `name` (the path without its leading `/`) may name a file of the build: plain
/// segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`. Debug builds read the files from disk
/// at run time, so nothing else may ever reach [`Dist::get`].
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let name = path.trim_start_matches('/');
    // a file of the build, else one of the panel's own routes → index.html; only the build's
    // assets directory answers 404 for what it does not have (route names may hold dots)
    let found = if plain_name(name) {
        Dist::get(name)
    } else {
        None
    };
    let (name, file) = match found {
        Some(file) => (name, file),
        None => {
            if name.starts_with("assets/") {
                return not_built_or(StatusCode::NOT_FOUND, "no such file in the panel");
            }
            match Dist::get("index.html") {
                Some(file) => ("index.html", file),
                None => return not_built_or(StatusCode::NOT_FOUND, NOT_BUILT),
            }
        }
    };
    let hash = hex(&file.metadata.sha256_hash());
    let immutable = name.starts_with("assets/");
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mime = file.metadata.mimetype().to_string();
    // a precompressed twin when the client takes it
    let accepts = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut encoding = None;
    let mut body = file.data;
    for (token, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepts_encoding(accepts, token) {
            if let Some(twin) = Dist::get(&format!("{name}.{ext}")) {
                encoding = Some((token, ext));
                body = twin.data;
                break;
            }
        }
    }
    // one validator per representation
    let etag = match encoding {
        Some((_, ext)) => format!("\"{hash}-{ext}\""),
        None => format!("\"{hash}\""),
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        set_common(r.headers_mut(), cache, &etag);
        return r;
    }
    let mut r = Response::new(Body::from(body.into_owned()));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some((token, _)) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    set_common(h, cache, &etag);
    r
}

fn set_common(h: &mut HeaderMap, cache: &'static str, etag: &str) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Whether an `Accept-Encoding` value takes `token` (and not with `q=0`).
fn accepts_encoding(accept: &str, token: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        name.eq_ignore_ascii_case(token) && !refused
    })
}

const NOT_BUILT: &str = "The web panel is not built. Build it with:\n\n    \
    (cd web && npm ci && npm run build)\n\nthen rebuild catalyst (release builds embed the \
    panel; debug builds read web/dist). The API works without it.\n";

fn not_built_or(code: StatusCode, message: &str) -> Response {
    let mut r = (code, message.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_prefixes_are_whole_segments() {
        assert!(is_api_path("/apis"));
        assert!(is_api_path("/apis/catalyst.dev/v1alpha1/nothing"));
        assert!(is_api_path("/auth/v1/nothing"));
        assert!(is_api_path("/metrics"));
        assert!(!is_api_path("/apisx"));
        assert!(!is_api_path("/"));
        assert!(!is_api_path("/gameservers/default/web"));
        assert!(!is_api_path("/authors"));
    }

    #[test]
    fn only_plain_names_reach_the_files() {
        for ok in ["index.html", "assets/index-abc_1.js", "favicon.svg"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../Cargo.toml",
            "assets/../../x",
            "a//b",
            "./index.html",
            "a\\..\\b",
            "%2e%2e/x",
            "a/b/",
            "/etc/passwd",
            "a\0b",
            "ind ex.html",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts_encoding("gzip, deflate, br, zstd", "br"));
        assert!(accepts_encoding("gzip;q=1.0, identity; q=0.5", "gzip"));
        assert!(!accepts_encoding("gzip;q=0, br", "gzip"));
        assert!(!accepts_encoding("identity", "br"));
        assert!(!accepts_encoding("", "gzip"));
    }
}
