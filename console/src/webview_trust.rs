//! Lets the webview open a server whose self-signed certificate the user accepted.
//!
//! Why this is safe: WebKitGTK's `allow_tls_certificate_for_host` adds an exception for exactly
//! one certificate (compared byte for byte) on exactly one host. It is the very leaf our probe
//! fetched — whose handshake signature proved the server holds its key — and whose SHA-256 the
//! user accepted (or that matched the remembered one). Any other certificate for that host, and
//! this certificate on any other host, still fails WebKit's normal checks. We never install a
//! blanket "ignore TLS errors" policy.

use url::Url;

use crate::probe::Probe;

#[cfg(target_os = "linux")]
pub(crate) fn trust_and_open<R: tauri::Runtime>(
    window: &tauri::WebviewWindow<R>,
    probed: &Probe,
    url: Url,
) -> tauri::Result<()> {
    use webkit2gtk::{WebContextExt, WebViewExt};

    let pem = to_pem(&probed.leaf_der);
    let host = probed.host.clone();
    // Runs on the GTK main thread, after anything queued before it; the exception is in place
    // before the load starts.
    window.with_webview(move |webview| {
        let view = webview.inner();
        match (
            view.context(),
            webkit2gtk::gio::TlsCertificate::from_pem(&pem),
        ) {
            (Some(context), Ok(certificate)) => {
                context.allow_tls_certificate_for_host(&certificate, &host);
            }
            (None, _) => eprintln!("tether-console: the webview has no web context"),
            (_, Err(error)) => eprintln!("tether-console: bad certificate: {error}"),
        }
        view.load_uri(url.as_str());
    })
}

/// Not yet on Windows and macOS: there the system verifies the certificate, so a self-signed
/// server must be trusted by the OS until WebView2/WKWebView exceptions are added here.
#[cfg(not(target_os = "linux"))]
pub fn trust_and_open<R: tauri::Runtime>(
    window: &tauri::WebviewWindow<R>,
    _probed: &Probe,
    url: Url,
) -> tauri::Result<()> {
    window.navigate(url)
}

/// Says on stderr which page WebKit failed to load and why, so a failure is not a silent blank.
#[cfg(target_os = "linux")]
pub(crate) fn log_refused_certificates<R: tauri::Runtime>(
    window: &tauri::WebviewWindow<R>,
) -> tauri::Result<()> {
    use webkit2gtk::WebViewExt;

    window.with_webview(|webview| {
        let view = webview.inner();
        view.connect_load_failed_with_tls_errors(|_, uri, _certificate, errors| {
            eprintln!("tether-console: refused the certificate of {uri}: {errors:?}");
            false
        });
        view.connect_load_failed(|_, _event, uri, error| {
            // A load that another navigation replaced (the picker still loading when the
            // server's page is opened) is cancelled, not failed: nothing to report.
            if !error.matches(webkit2gtk::NetworkError::Cancelled) {
                eprintln!("tether-console: failed to load {uri}: {error}");
            }
            false
        });
    })
}

#[cfg(not(target_os = "linux"))]
pub fn log_refused_certificates<R: tauri::Runtime>(
    _window: &tauri::WebviewWindow<R>,
) -> tauri::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn to_pem(der: &[u8]) -> String {
    use base64::Engine;

    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
