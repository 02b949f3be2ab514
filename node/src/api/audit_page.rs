//! The regulator's web page at `/regulator/`: plain HTML, JavaScript and CSS compiled into
//! the binary, no build step and no external address. The script polls the JSON API of the
//! node that serves it; the Content-Security-Policy lets the page load and fetch only from
//! that same origin.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("regulator/index.html");
const SCRIPT: &str = include_str!("regulator/app.js");
/// The regulator's actions, encoded and signed in the browser.
const SIGNING: &str = include_str!("regulator/sign.js");
const STYLE: &str = include_str!("regulator/style.css");

/// Same origin only: no inline script or style, no frames, no other hosts. Images may be
/// `blob:` URLs: the charts, fetched with a signed request and shown from memory (an SVG
/// shown as an image runs no script).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub async fn redirect() -> Redirect {
    Redirect::permanent("/regulator/")
}

pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn signing() -> Response {
    page("text/javascript; charset=utf-8", SIGNING)
}

pub async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}
