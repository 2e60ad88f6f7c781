//! The storage node's error type; `api.rs` turns it into an HTTP response in one place.

use thiserror::Error;

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
    /// No listing format the client accepts (406).
    #[error("not acceptable")]
    NotAcceptable,
    /// A peer node did not answer or failed.
    #[error("peer error: {0}")]
    Peer(String),
}

impl From<tokio::task::JoinError> for StorageError {
    fn from(e: tokio::task::JoinError) -> Self {
        StorageError::Io(std::io::Error::other(e))
    }
}
