//! The one HTTP body type of our servers (axum's, so the proxy's handlers and
//! the storage client pass bodies through without re-boxing), and ways to make one.

use bytes::Bytes;
use tokio::sync::mpsc;

pub type Body = axum_core::body::Body;

pub fn full(b: impl Into<Bytes>) -> Body {
    Body::from(b.into())
}

pub fn empty() -> Body {
    Body::empty()
}

/// A body fed by a producer task through a small channel.
pub fn channel() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Body::from_stream(stream))
}
