//! The proxy's errors, named for what went wrong, and their one mapping to
//! Swift's statuses and bodies ([`ProxyError::into_response`]). Handlers stay
//! flat with [`OkOr`] (`.ok_or_bad_request("...")?`).

use hyper::Response;
use thiserror::Error;
use wire::body::Body;
use wire::reply;

/// Which name broke a length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Account,
    Container,
    Object,
}

#[derive(Debug, Error)]
pub enum ProxyError {
    /// No valid token (401; the router adds the `WWW-Authenticate` realm).
    #[error("unauthorized")]
    Unauthorized,
    /// The caller is known but not allowed (403).
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// No app for what was asked (404 with the reason): `No application
    /// registered for <type>`.
    #[error("{0}")]
    AppNotFound(String),
    /// A chain of jobs longer than `chain_depth` (508 with the reason).
    #[error("{0}")]
    ChainTooLong(String),
    /// An app's configuration is larger than `maxconfig` (413 with the
    /// reason).
    #[error("{0}")]
    ConfigTooLarge(String),
    /// The request is malformed: 400 with Swift's plain-text reason.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A name longer than Swift allows (400, "<Kind> name length of N longer than M").
    #[error("{kind:?} name length of {len} longer than {max}")]
    NameTooLong { kind: Name, len: usize, max: usize },
    /// A path or header that does not decode to valid UTF-8 without NUL (412).
    #[error("invalid UTF-8 or NUL")]
    InvalidUtf8,
    /// A precondition on the request's form failed: 412 with the reason.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// An upload larger than the object size limit (413).
    #[error("request too large")]
    TooLarge,
    /// A request URI too long to route (414).
    #[error("request URI too long")]
    UriTooLong,
    /// An upload with neither Content-Length nor chunked encoding (411).
    #[error("length required")]
    LengthRequired,
    /// The method is not allowed here (405); `allow` lists those that are.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// A feature Swift refuses with 501 and a reason.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// The request took longer than allowed (408), with a reason.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The client sent less than it announced or went away (499).
    #[error("client disconnected: {0}")]
    ClientDisconnect(String),
    /// Understood but unusable (422), with a reason (`Error reading
    /// application/x-tar stream`); `None`: Swift's default body.
    #[error("unprocessable: {0:?}")]
    Unprocessable(Option<String>),
    /// Cannot be served now (503) with a reason, and when to try again.
    #[error("unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<u64>,
    },
    /// A job input could not be read from storage: its status, and
    /// `Error <status line> while fetching /a/c/o`.
    #[error("fetch failed: {status} {path}")]
    FetchFailed { status: u16, path: String },
    /// A job description the compiler refused; its status and message.
    #[error(transparent)]
    Job(#[from] sysmap::Error),
    /// The storage did not answer, or answered what it should not (503).
    #[error("backend unavailable: {0}")]
    Backend(String),
    /// The OpenStack Swift proxy we stand in front of did not answer (502,
    /// naming it).
    #[error("{0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn bad_request(msg: impl Into<String>) -> ProxyError {
        ProxyError::BadRequest(msg.into())
    }

    pub fn precondition(msg: impl Into<String>) -> ProxyError {
        ProxyError::PreconditionFailed(msg.into())
    }

    /// The one place proxy errors become Swift's responses.
    pub fn into_response(self) -> Response<Body> {
        match self {
            ProxyError::Unauthorized => reply::status(401),
            ProxyError::Forbidden => reply::status(403),
            ProxyError::NotFound => reply::status(404),
            ProxyError::AppNotFound(m) => reply::text(404, m),
            ProxyError::ConfigTooLarge(m) => reply::text(413, m),
            ProxyError::ChainTooLong(m) => reply::text(508, m),
            ProxyError::BadRequest(m) => reply::text(400, m),
            ProxyError::NameTooLong { kind, len, max } => {
                let (what, html) = match kind {
                    Name::Account => ("Account", false),
                    // Swift builds this one without a content type: text/html.
                    Name::Container => ("Container", true),
                    Name::Object => ("Object", false),
                };
                let m = format!("{what} name length of {len} longer than {max}");
                if html {
                    reply::html(400, m)
                } else {
                    reply::text(400, m)
                }
            }
            ProxyError::InvalidUtf8 => reply::text(412, "Invalid UTF8 or contains NULL"),
            ProxyError::PreconditionFailed(m) => reply::text(412, m),
            ProxyError::TooLarge => reply::text(413, "Your request is too large."),
            ProxyError::UriTooLong => reply::text(414, "The request URI is too long."),
            ProxyError::LengthRequired => reply::text(411, "Missing Content-Length header."),
            ProxyError::MethodNotAllowed { allow } => {
                let mut r = reply::status(405);
                r.headers_mut()
                    .insert("allow", hyper::header::HeaderValue::from_static(allow));
                r
            }
            ProxyError::NotImplemented(m) => reply::text(501, m),
            ProxyError::Timeout(m) => reply::text(408, m),
            ProxyError::ClientDisconnect(m) => reply::text(499, m),
            ProxyError::Unprocessable(Some(m)) => reply::text(422, m),
            ProxyError::Unprocessable(None) => reply::status(422),
            ProxyError::Unavailable {
                message,
                retry_after,
            } => {
                let mut r = reply::text(503, message);
                if let Some(s) = retry_after {
                    r.headers_mut().insert("retry-after", s.into());
                }
                r
            }
            ProxyError::FetchFailed { status, path } => {
                let reason = hyper::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                reply::text(
                    status,
                    format!("Error {status} {reason} while fetching {path}"),
                )
            }
            ProxyError::Job(e) => reply::text(e.http_status(), e.to_string()),
            ProxyError::Upstream(m) => {
                tracing::error!("{m}");
                reply::text(502, m)
            }
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

impl axum_core::response::IntoResponse for ProxyError {
    fn into_response(self) -> axum_core::response::Response {
        ProxyError::into_response(self)
    }
}

impl From<http::Error> for ProxyError {
    fn from(e: http::Error) -> Self {
        ProxyError::Internal(e.to_string())
    }
}

/// garage-style helpers that turn a missing value into a named error.
pub trait OkOr<T> {
    fn ok_or_bad_request(self, msg: impl Into<String>) -> Result<T, ProxyError>;
    fn ok_or_precondition(self, msg: impl Into<String>) -> Result<T, ProxyError>;
}

impl<T> OkOr<T> for Option<T> {
    fn ok_or_bad_request(self, msg: impl Into<String>) -> Result<T, ProxyError> {
        self.ok_or_else(|| ProxyError::BadRequest(msg.into()))
    }
    fn ok_or_precondition(self, msg: impl Into<String>) -> Result<T, ProxyError> {
        self.ok_or_else(|| ProxyError::PreconditionFailed(msg.into()))
    }
}

impl<T, E> OkOr<T> for Result<T, E> {
    fn ok_or_bad_request(self, msg: impl Into<String>) -> Result<T, ProxyError> {
        self.map_err(|_| ProxyError::BadRequest(msg.into()))
    }
    fn ok_or_precondition(self, msg: impl Into<String>) -> Result<T, ProxyError> {
        self.map_err(|_| ProxyError::PreconditionFailed(msg.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_errors_keep_their_status() {
        let r = ProxyError::from(sysmap::Error::Unparsable).into_response();
        assert_eq!(r.status(), 422);
        let r = ProxyError::from(sysmap::Error::NoNodes).into_response();
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn names_and_statuses() {
        let r = ProxyError::NameTooLong {
            kind: Name::Container,
            len: 300,
            max: 256,
        }
        .into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "text/html; charset=UTF-8");
        assert_eq!(ProxyError::InvalidUtf8.into_response().status(), 412);
        let r = ProxyError::MethodNotAllowed { allow: "GET" }.into_response();
        assert_eq!(
            (r.status().as_u16(), &r.headers()["allow"]),
            (405, &"GET".parse::<hyper::header::HeaderValue>().unwrap())
        );
        assert!(
            matches!(None::<u8>.ok_or_bad_request("x"), Err(ProxyError::BadRequest(m)) if m == "x")
        );
    }
}
