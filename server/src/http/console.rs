//! The web console's files, built by `build.rs` into console/web/dist and embedded in the binary
//! (one file to install). Hashed assets (`/assets/name-HASH.js`) never change under a name, so
//! browsers keep them for a year; everything else is revalidated with an ETag on each load, so an
//! upgraded server is picked up at once. Any other GET that is not an API path is the single-page
//! app's own route and gets index.html.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../console/web/dist/"]
struct ConsoleFiles;

/// Paths owned by the API and the WebSocket endpoints: an unknown one is a 404, not the app.
const NON_APP_PREFIXES: &[&str] = &[
    "/api/",
    "/control",
    "/agent.ashx",
    "/relay",
    "/meshrelay.ashx",
    "/health",
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The router's fallback: console files and app routes for GET/HEAD, 404 for everything else.
pub(super) async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = uri.path();
    if NON_APP_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let name = path.trim_start_matches('/');
    let response = match ConsoleFiles::get(name).filter(|_| !name.is_empty()) {
        Some(file) => file_response(name, file, &headers),
        // A missing hashed asset must not come back as HTML: the browser would try to run it.
        None if name.starts_with("assets/") => StatusCode::NOT_FOUND.into_response(),
        None => index(&headers),
    };
    if method == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    response
}

fn index(headers: &HeaderMap) -> Response {
    match ConsoleFiles::get("index.html") {
        Some(file) => file_response("index.html", file, headers),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the console was not built into this server",
        )
            .into_response(),
    }
}

fn file_response(name: &str, file: rust_embed::EmbeddedFile, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let etag_value = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, etag_value),
    ];
    if not_modified {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let body: Body = match file.data {
        Cow::Borrowed(bytes) => Body::from(bytes),
        Cow::Owned(bytes) => Body::from(bytes),
    };
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(name)),
        )],
        body,
    )
        .into_response()
}

/// Content types for what Vite emits; unknown kinds are served as opaque bytes (with nosniff).
fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response {
        let request = (Method::GET, path.parse::<Uri>().unwrap(), HeaderMap::new());
        futures_util::FutureExt::now_or_never(serve(request.0, request.1, request.2)).unwrap()
    }

    fn asset_names() -> Vec<String> {
        ConsoleFiles::iter()
            .filter(|n| n.starts_with("assets/"))
            .map(|n| n.into_owned())
            .collect()
    }

    #[test]
    fn app_routes_get_index_html_revalidated() {
        for path in ["/", "/devices", "/devices/abc%24def/general", "/users"] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        }
    }

    #[test]
    fn hashed_assets_are_immutable_with_their_type() {
        let names = asset_names();
        assert!(
            names.iter().any(|n| n.ends_with(".js")),
            "no script in {names:?}"
        );
        assert!(
            names.iter().any(|n| n.ends_with(".css")),
            "no stylesheet in {names:?}"
        );
        for name in names {
            let response = get(&format!("/{name}"));
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CACHE_CONTROL], IMMUTABLE);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                content_type(&name)
            );
        }
    }

    #[test]
    fn api_paths_and_missing_assets_are_not_the_app() {
        for path in ["/api/nope", "/assets/missing-123.js", "/control/x"] {
            assert_eq!(get(path).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn a_matching_etag_answers_not_modified() {
        let etag = get("/").headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag);
        let response = futures_util::FutureExt::now_or_never(serve(
            Method::GET,
            "/devices".parse().unwrap(),
            headers,
        ))
        .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn index_html_loads_only_files_no_inline_code() {
        let index = ConsoleFiles::get("index.html").unwrap();
        let html = std::str::from_utf8(&index.data).unwrap();
        // The CSP allows no inline script (and only the terminal needs inline styles, which it
        // creates at run time): every <script> must have a src, and the page itself has no <style>.
        assert!(
            !html.contains("<script>") && !html.contains("<style"),
            "{html}"
        );
        assert!(!html.contains(" style="), "{html}");
    }
}
