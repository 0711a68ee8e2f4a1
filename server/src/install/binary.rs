//! The agent binary the server hands out: `<datapath>/agents/tether-agent-linux-x86_64` when an
//! administrator put one there (a release build, say), else the `tether-agent` installed next to
//! the server's own executable. Streamed from disk, never read into memory whole.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use crate::config::Config;
use crate::http::error::ApiError;

/// Inside the data folder; wins over the binary next to the server.
pub(crate) const UPLOADED: &str = "agents/tether-agent-linux-x86_64";
/// The file name the download is saved under.
const FILE_NAME: &str = "tether-agent";

/// Where the binary to serve is, in order of preference (whether or not they exist).
pub(crate) fn candidates(config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![config.data_file(UPLOADED)];
    if let Ok(server) = std::env::current_exe() {
        paths.push(server.with_file_name(FILE_NAME));
    }
    paths
}

/// The agent binary as a download, or 404 saying there is none (the paths go to the log only).
pub(super) async fn response(config: &Config) -> Response {
    let paths = candidates(config);
    for path in &paths {
        match open(path).await {
            Ok(Some(found)) => return found,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(path = %path.display(), "agent download: cannot read the binary: {e}");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "The agent binary cannot be read (see the server log).",
                )
                .into_response();
            }
        }
    }
    let tried: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    tracing::warn!(
        "agent download: no agent binary to offer; looked for {}",
        tried.join(", ")
    );
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_agent_binary",
        "This server has no agent binary to offer. Its administrator can put one in the data \
         folder as agents/tether-agent-linux-x86_64, or install tether-agent next to tether-server.",
    ).into_response()
}

/// `Ok(None)` when there is no file at `path`.
async fn open(path: &Path) -> std::io::Result<Option<Response>> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata().await?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{FILE_NAME}\""),
        ),
        (header::CONTENT_LENGTH, metadata.len().to_string()),
        (header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    Ok(Some(
        (headers, Body::from_stream(ReaderStream::new(file))).into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_in_the_data_folder_comes_first() {
        let config = Config {
            datapath: PathBuf::from("/srv/tether"),
            ..Config::default()
        };
        let paths = candidates(&config);
        assert_eq!(
            paths[0],
            Path::new("/srv/tether/agents/tether-agent-linux-x86_64")
        );
        assert_eq!(paths[1].file_name().unwrap(), "tether-agent");
    }
}
