//! Whether a connection is in use, for the idle timeout, and a deadline on each request.
//!
//! hyper closes an HTTP/1 connection that takes too long to send its request headers, but it
//! has no idle timeout for HTTP/2 (a client that answers pings may keep a connection open
//! forever without asking anything) and none while it sniffs the protocol of a new connection.
//! So every request marks its connection busy until its response head is ready; a connection
//! with no request in progress for `http_idle_timeout_secs` is shut down gracefully. A response
//! body still streaming then is finished first (graceful shutdown lets it).
//!
//! A request must also be read and answered within `http_request_timeout_secs`: handlers read
//! the whole body (at most 1 MiB) before answering, so this bounds a body trickled a byte at a time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper::Request;
use hyper::body::Incoming;
use tokio::time::Instant;

/// Requests in progress on one connection, and since when there have been none.
pub(super) struct Activity {
    state: Mutex<State>,
}

struct State {
    in_progress: usize,
    idle_since: Instant,
}

/// One request being answered; the connection counts as busy while this lives.
pub(super) struct Busy {
    activity: Arc<Activity>,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_progress: 0,
                idle_since: Instant::now(),
            }),
        })
    }

    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.lock().in_progress += 1;
        Busy {
            activity: self.clone(),
        }
    }

    /// How long the connection has had no request in progress; `None` while one is.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        let state = self.lock();
        (state.in_progress == 0).then(|| now.saturating_duration_since(state.idle_since))
    }

    /// Resolves once the connection has been idle for `limit` without a break.
    pub(super) async fn idle_for_at_least(&self, limit: Duration) {
        loop {
            let wait = match self.idle_for(Instant::now()) {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Updates are single field changes that cannot panic half-way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.in_progress = state.in_progress.saturating_sub(1);
        if state.in_progress == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// The connection's service (axum's router with the peer address), with each request marking
/// the connection busy and bounded by a deadline.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
    pub request_timeout: Duration,
    pub peer: SocketAddr,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut inner = self.inner.clone();
        let busy = self.activity.begin();
        let (deadline, peer) = (self.request_timeout, self.peer);
        Box::pin(async move {
            let answer = async move {
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(request).await
            };
            let response = match tokio::time::timeout(deadline, answer).await {
                Ok(response) => response?,
                Err(_) => {
                    tracing::info!(%peer, "a request was not read and answered within {deadline:?}; closing it");
                    (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
                }
            };
            drop(busy);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_only_without_a_request_in_progress() {
        let activity = Activity::new();
        let later = |secs| Instant::now() + Duration::from_secs(secs);
        assert!(activity.idle_for(later(5)).unwrap() >= Duration::from_secs(5));
        let busy = activity.begin();
        let second = activity.begin();
        assert_eq!(activity.idle_for(later(5)), None);
        drop(busy);
        assert_eq!(activity.idle_for(later(5)), None, "one still runs");
        drop(second);
        let idle = activity.idle_for(later(5)).unwrap();
        assert!(idle >= Duration::from_secs(5) && idle < Duration::from_secs(6));
    }

    #[tokio::test]
    async fn the_idle_wait_lasts_a_full_period_after_the_last_request() {
        let activity = Activity::new();
        let busy = activity.begin();
        drop(busy);
        let started = Instant::now();
        activity.idle_for_at_least(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
