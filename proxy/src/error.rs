//! The proxy's error type and its one mapping to Swift's responses.

use hyper::Response;
use wire::body::Body;
use wire::reply;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProxyError {
    /// A status with swob's default body.
    #[error("status {0}")]
    Status(u16),
    /// A status with a plain-text body (Swift's validation messages).
    #[error("{0}: {1}")]
    Text(u16, String),
    /// A status with our body but swob's default `text/html` content type.
    #[error("{0}: {1}")]
    Html(u16, String),
    #[error("backend unavailable: {0}")]
    Backend(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn bad_request(msg: impl Into<String>) -> ProxyError {
        ProxyError::Text(400, msg.into())
    }

    pub fn into_response(self) -> Response<Body> {
        match self {
            ProxyError::Status(s) => reply::status(s),
            ProxyError::Text(s, m) => reply::text(s, m),
            ProxyError::Html(s, m) => reply::html(s, m),
            ProxyError::Backend(m) => {
                tracing::error!("backend error: {m}");
                reply::status(503)
            }
            ProxyError::Internal(m) => {
                tracing::error!("internal error: {m}");
                reply::status(500)
            }
        }
    }
}

impl From<http::Error> for ProxyError {
    fn from(e: http::Error) -> Self {
        ProxyError::Internal(e.to_string())
    }
}
