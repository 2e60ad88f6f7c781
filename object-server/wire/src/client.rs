//! The HTTP client both sides use for internal requests (proxy → node, node →
//! node). hyper's pooled client rather than reqwest: this is the hot path of
//! every object request and hyper adds no layer between us and the connection
//! (`bench --bin clients` measures both;
//! docs/architecture.md has the figures).

use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

pub type HttpClient = Client<HttpConnector, Body>;

/// Header count limit on internal requests and responses: Swift allows 90
/// metadata items plus the usual headers (hyper's default is 100).
pub const MAX_HEADERS: usize = 256;

/// A client error with its cause (hyper's own text is only "client error
/// (Connect)"; the cause says "Connection refused").
pub fn describe(e: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

pub fn http_client() -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .http1_max_headers(MAX_HEADERS)
        .build(conn)
}
