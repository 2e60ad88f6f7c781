//! The storage node's errors, named for what went wrong, and their one mapping
//! to Swift's statuses and bodies ([`StorageError::into_response`]).

use hyper::Response;
use thiserror::Error;
use tracing::error;
use wire::body::Body;
use wire::reply;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A newer write already exists (Swift answers 409).
    #[error("a newer version exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// Plain-text 400 body, as Swift's.
    #[error("{0}")]
    BadRequest(String),
    /// 412 with a plain-text body.
    #[error("{0}")]
    Precondition(String),
    /// A conditional request's precondition (If-Match, If-None-Match) failed (412).
    #[error("precondition failed")]
    PreconditionFailed,
    /// A name in the path is not valid UTF-8 or holds a NUL (412).
    #[error("invalid UTF-8 or NUL in a name")]
    InvalidName,
    /// The body's MD5 is not the ETag the client sent (422).
    #[error("ETag mismatch")]
    EtagMismatch,
    /// The client sent less than it announced, or went away (499: nothing stored).
    #[error("client disconnected")]
    ClientDisconnect,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No listing format the client accepts (406).
    #[error("not acceptable")]
    NotAcceptable,
    /// Not found, with a plain-text reason (exec: `Error 404 Not Found
    /// while fetching /a/c/o`).
    #[error("{0}")]
    Missing(String),
    /// Not allowed here (405), with a reason.
    #[error("{0}")]
    NotAllowed(String),
    /// Too large, with a reason (413).
    #[error("{0}")]
    TooLarge(String),
    /// Understood but unusable (422), with a reason.
    #[error("{0}")]
    Unprocessable(String),
    /// Cannot serve this now (503): no slot, an image still installing;
    /// `retry_after` in seconds when trying again may help.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<u64>,
    },
    /// A peer node did not answer or failed.
    #[error("peer error: {0}")]
    Peer(String),
}

impl From<tokio::task::JoinError> for StorageError {
    fn from(e: tokio::task::JoinError) -> Self {
        StorageError::Io(std::io::Error::other(e))
    }
}

impl StorageError {
    /// The one place storage errors become HTTP responses.
    pub fn into_response(self) -> Response<Body> {
        match self {
            StorageError::NotFound => reply::status(404),
            StorageError::Conflict => reply::status(409),
            StorageError::BadRequest(m) => reply::text(400, m),
            StorageError::Precondition(m) => reply::text(412, m),
            StorageError::PreconditionFailed => reply::status(412),
            StorageError::InvalidName => reply::text(412, "Invalid UTF8 or contains NULL"),
            StorageError::EtagMismatch => reply::status(422),
            StorageError::ClientDisconnect => reply::status(499),
            StorageError::MethodNotAllowed => reply::status(405),
            StorageError::NotAcceptable => reply::status(406),
            StorageError::Missing(m) => reply::text(404, m),
            StorageError::NotAllowed(m) => reply::text(405, m),
            StorageError::TooLarge(m) => reply::text(413, m),
            StorageError::Unprocessable(m) => reply::text(422, m),
            StorageError::Unavailable {
                message,
                retry_after,
            } => {
                let mut r = reply::text(503, message);
                if let Some(s) = retry_after {
                    r.headers_mut().insert("retry-after", s.into());
                }
                r
            }
            e @ (StorageError::Io(_)
            | StorageError::Db(_)
            | StorageError::Corrupt(_)
            | StorageError::Peer(_)) => {
                error!("internal error: {e}");
                reply::status(500)
            }
        }
    }
}

impl axum_core::response::IntoResponse for StorageError {
    fn into_response(self) -> axum_core::response::Response {
        StorageError::into_response(self)
    }
}
