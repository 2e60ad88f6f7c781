//! The one accept loop of both servers (the proxy's public API and a storage
//! node's internal API): HTTP/1.1 with keep-alive, TCP_NODELAY, room for Swift's
//! header counts, and a graceful stop that lets open requests finish.
//!
//! A request whose handler answered and let go of its body before the end
//! (a refusal that never read the upload) is answered with `Connection:
//! close`: hyper then closes the connection without saying so, and a
//! pooled client (the proxy's storage client) could otherwise send its next
//! request on a connection that is going away.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::body::Body;
use crate::client::MAX_HEADERS;

/// How long [`Server::stop`] waits for open requests before closing them.
pub const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Send header names title-cased (`Content-Length`), as Swift's eventlet
    /// server does; some clients compare them case-sensitively.
    pub title_case_headers: bool,
}

/// A running server; dropping it leaves it running until the runtime ends.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<bool>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits for open requests to finish (at most
    /// [`DRAIN`]). True if every connection closed in time.
    pub async fn stop(self) -> bool {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap_or(false)
    }
}

/// Connections the kernel keeps waiting for `accept` (std's default is
/// 128: a burst of a thousand clients then waits a second for SYN retries).
pub const BACKLOG: u32 = 4096;

/// Binds `addr` (`host:port`, port 0 for any) with a [`BACKLOG`]-deep
/// accept queue. The address is taken as given, never looked up by name
/// beyond what `host:port` resolution does.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("no address to listen on in {addr:?}"),
    );
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A request body that tells, once dropped, whether it was read to its end.
struct Watched {
    inner: Incoming,
    /// Set when the body ended, or when it was dropped before that.
    ended: bool,
    unread: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            self.unread.store(true, Ordering::Relaxed);
        }
    }
}

/// Serves `handler` on `listener` until [`Server::stop`].
pub fn spawn<F, Fut>(listener: TcpListener, opts: Options, handler: F) -> std::io::Result<Server>
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, opts, handler, rx));
    Ok(Server {
        addr,
        shutdown: tx,
        task,
    })
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    opts: Options,
    handler: F,
    mut shutdown: watch::Receiver<bool>,
) -> bool
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let (stream, peer) = match acc {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let h = handler.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    // Only a body with bytes to come is watched.
                    let (req, unread) = if req.body().is_end_stream() {
                        (req.map(Body::new), None)
                    } else {
                        let unread = Arc::new(AtomicBool::new(false));
                        let flag = unread.clone();
                        let req = req.map(move |inner| {
                            Body::new(Watched {
                                inner,
                                ended: false,
                                unread: flag,
                            })
                        });
                        (req, Some(unread))
                    };
                    let fut = h(req);
                    async move {
                        let mut resp = fut.await;
                        if unread.is_some_and(|u| u.load(Ordering::Relaxed)) {
                            resp.headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                // Room for 90 metadata headers and the rest, so Swift's own limits
                // (400 with its messages) apply rather than hyper's 431.
                builder
                    .title_case_headers(opts.title_case_headers)
                    .max_headers(MAX_HEADERS);
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!("connection from {peer}: {e}");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => true,
        _ = tokio::time::sleep(DRAIN) => {
            warn!("connections still open after {} s; closing", DRAIN.as_secs());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    #[tokio::test]
    async fn stop_closes_the_port() {
        let l = bind("127.0.0.1:0").await.unwrap();
        let s = spawn(l, Options::default(), |_req| async {
            Response::new(body::full("hi"))
        })
        .unwrap();
        let addr = s.addr();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("hi"),
            "{out}"
        );
        assert!(s.stop().await);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_request_that_never_finishes_is_closed_after_the_drain() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = spawn(l, Options::default(), |req: Request<Body>| async move {
            let _ = req.into_body().collect().await;
            Response::new(body::empty())
        })
        .unwrap();
        let mut c = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        c.write_all(b"PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\npart")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The upload never completes: stop gives up after DRAIN and says so.
        assert!(!s.stop().await);
    }
    /// Sends `req` raw and returns the response head.
    async fn head_of(addr: SocketAddr, req: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(req).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    }

    #[tokio::test]
    async fn an_answer_that_let_go_of_an_unread_body_closes_the_connection() {
        use http_body_util::BodyExt;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = spawn(l, Options::default(), |req: Request<Body>| async move {
            if req.uri().path() == "/read" {
                let _ = req.into_body().collect().await;
            }
            Response::new(body::full("ok"))
        })
        .unwrap();
        let put = |path: &str| {
            format!("PUT {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        };
        let refused = head_of(s.addr(), put("/refuse").as_bytes()).await;
        assert!(refused.contains("connection: close"), "{refused}");
        let read = head_of(s.addr(), put("/read").as_bytes()).await;
        assert!(!read.contains("connection: close"), "{read}");
        let get = head_of(s.addr(), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(!get.contains("connection: close"), "{get}");
        assert!(s.stop().await);
    }
}
