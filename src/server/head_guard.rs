//! HTTP/1 request heads judged before hyper sees them.
//!
//! hyper answers a head it cannot take with a bare status of its own (400, 431) that no log
//! line, metric or JSON body would follow, and closes while the client is still sending, so a
//! client with a 60 KB header reads a connection reset instead of the 431. The guard sits between
//! TLS and hyper: it hands hyper a head only once it is complete, within `max_header_bytes`, and
//! parses as hyper would parse it. A head it refuses is replaced by a request of its own, marked
//! with a per-connection token that no client can know, which the service answers through the
//! one error mapping (`http::answer_outside`) with `Connection: close`; then the guard gives
//! hyper nothing more to read, and on shutdown drains (a bounded amount, for a bounded time) what the
//! client is still sending, so the answer is read rather than reset.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most header lines a head may have (hyper's own limit).
pub const MAX_HEADERS: usize = 100;
/// After a refused head, at most this much of what the client still sends is read and dropped...
const DRAIN_BYTES: usize = 256 * 1024;
/// ...for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);
/// The header that marks the guard's own request.
pub const MARK: &str = "x-ccs-refused-head";

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Longer than `max_header_bytes` (or more than [`MAX_HEADERS`] lines).
    TooLarge(String),
    /// Not an HTTP/1 request head: what is wrong, for the caller.
    Malformed(String),
}

/// What the guard and the service share for one connection.
pub struct Refusals {
    token: String,
    refused: Mutex<Option<Refused>>,
}

impl Refusals {
    pub fn new() -> Arc<Self> {
        let mut bytes = [0u8; 16];
        // Without randomness the mark is still per connection; it only has to be unguessable
        // enough that a client cannot make its own request look refused (which gains nothing).
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        Arc::new(Self {
            token: hex::encode(bytes),
            refused: Mutex::new(None),
        })
    }

    /// The refusal a request stands for, if it is the guard's own.
    pub fn take(&self, headers: &http::HeaderMap) -> Option<Refused> {
        let marked = headers
            .get(MARK)
            .is_some_and(|v| v.as_bytes() == self.token.as_bytes());
        if !marked {
            return None;
        }
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

enum State {
    /// Judging heads.
    Heads,
    /// A request with a body went through: the rest of the connection passes untouched (the
    /// service closes it after the answer).
    Passthrough,
    /// A head was refused: after the guard's own request, nothing more for hyper to read.
    Refused,
}

/// An IO that lets through only judged HTTP/1 request heads.
pub struct HeadGuard<IO> {
    inner: IO,
    max: usize,
    state: State,
    /// Read from the client; the first `judged` bytes may go to hyper.
    pending: Vec<u8>,
    judged: usize,
    refusals: Arc<Refusals>,
    drain: Option<(Pin<Box<tokio::time::Sleep>>, usize)>,
    /// Whether the HTTP/2 preface passes (prior knowledge); else it is refused.
    h2: bool,
}

/// The verdict on the bytes read so far (see [`judge`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// A good head of this many bytes; `then_body` when a body follows it.
    Head {
        len: usize,
        then_body: bool,
    },
    /// The HTTP/2 preface (prior knowledge): nothing more to judge.
    H2,
    NeedMore,
    Refuse(Refused),
}

/// Judges the start of `pending` as an HTTP/1 request head of at most `max` bytes.
pub fn judge(pending: &[u8], max: usize) -> Judged {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    if pending.len() < PREFACE.len() && PREFACE.starts_with(pending) {
        return Judged::NeedMore;
    }
    if pending.starts_with(PREFACE) {
        return Judged::H2;
    }
    let too_large = || Refused::TooLarge(format!("the request head is longer than {max} bytes"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(pending) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if pending.len() > max => {
            return Judged::Refuse(too_large());
        }
        Ok(httparse::Status::Partial) => return Judged::NeedMore,
        Err(httparse::Error::TooManyHeaders) => {
            return Judged::Refuse(Refused::TooLarge(format!(
                "more than {MAX_HEADERS} header lines"
            )))
        }
        Err(e) => return Judged::Refuse(Refused::Malformed(describe(e))),
    };
    if len > max {
        return Judged::Refuse(too_large());
    }
    match judge_parsed(&request) {
        Ok(then_body) => Judged::Head { len, then_body },
        Err(why) => Judged::Refuse(Refused::Malformed(why)),
    }
}

impl<IO> HeadGuard<IO> {
    /// Judges heads of at most `max` bytes read from `inner`.
    pub fn new(inner: IO, max: usize, refusals: Arc<Refusals>) -> Self {
        Self {
            inner,
            max,
            state: State::Heads,
            pending: Vec::new(),
            judged: 0,
            refusals,
            drain: None,
            h2: true,
        }
    }

    /// Refuses the HTTP/2 preface (prior knowledge) as a malformed head: a listener that
    /// serves HTTP/1.1 only (the admin API).
    pub fn http1_only(mut self) -> Self {
        self.h2 = false;
        self
    }

    /// Lets everything through (a connection that speaks HTTP/2 by ALPN).
    pub fn passthrough(inner: IO, refusals: Arc<Refusals>) -> Self {
        let mut guard = Self::new(inner, 0, refusals);
        guard.state = State::Passthrough;
        guard
    }

    fn refuse(&mut self, refused: Refused) {
        *self
            .refusals
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(refused);
        self.pending = format!(
            "GET / HTTP/1.1\r\nhost: refused\r\nconnection: close\r\n{MARK}: {}\r\n\r\n",
            self.refusals.token
        )
        .into_bytes();
        self.judged = self.pending.len();
        self.state = State::Refused;
    }
}

/// The checks hyper makes after httparse: a target that is a URI (and has no fragment, which
/// the URI type would silently drop), one body framing. (Header names and values httparse
/// accepted are the ones the `http` types take.) Whether a body follows.
fn judge_parsed(request: &httparse::Request<'_, '_>) -> Result<bool, String> {
    let target = request.path.unwrap_or_default();
    if target.contains('#') {
        return Err("the request target holds a fragment (#…): send the path alone".into());
    }
    if target.parse::<http::Uri>().is_err() {
        return Err("the request target is not a valid URI path".into());
    }
    let (mut length, mut chunked) = (None::<u64>, false);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("Content-Length is not a number")?;
            if length.is_some_and(|l| l != value) {
                return Err("Content-Length is given twice with different values".into());
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(|v| v.trim_ascii())
                .unwrap_or_default();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err("Transfer-Encoding must end with chunked".into());
            }
            chunked = true;
        }
    }
    if chunked && length.is_some() {
        return Err("both Content-Length and Transfer-Encoding are given: send one".into());
    }
    Ok(chunked || length.is_some_and(|l| l > 0))
}

/// httparse's error, for the caller.
fn describe(e: httparse::Error) -> String {
    match e {
        httparse::Error::HeaderName => "a header name holds a character HTTP does not allow",
        httparse::Error::HeaderValue => "a header value holds a character HTTP does not allow",
        httparse::Error::NewLine => "a line does not end with CRLF",
        httparse::Error::Token => {
            "the request line holds a character HTTP does not allow in a method or path"
        }
        httparse::Error::Version => {
            "not an HTTP/1.0 or HTTP/1.1 request line (HTTP/2 is offered by TLS ALPN)"
        }
        _ => "not an HTTP/1.1 request head",
    }
    .into()
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.judged > 0 {
                let n = this.judged.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.judged -= n;
                return Poll::Ready(Ok(()));
            }
            match this.state {
                // Nothing more for hyper: it answers the guard's request (Connection: close)
                // and shuts down. End-of-file here would make it drop that answer.
                State::Refused => return Poll::Pending,
                State::Passthrough if this.pending.is_empty() => {
                    return Pin::new(&mut this.inner).poll_read(cx, buf)
                }
                State::Passthrough => {
                    this.judged = this.pending.len();
                    continue;
                }
                State::Heads => {}
            }
            match judge(&this.pending, this.max) {
                Judged::Head { len, then_body } => {
                    this.judged = len;
                    if then_body {
                        this.state = State::Passthrough;
                    }
                    continue;
                }
                Judged::H2 if this.h2 => {
                    this.state = State::Passthrough;
                    continue;
                }
                Judged::H2 => {
                    this.refuse(Refused::Malformed(
                        "HTTP/2 is not served on this port: it takes HTTP/1.1 only".into(),
                    ));
                    continue;
                }
                Judged::Refuse(refused) => {
                    this.refuse(refused);
                    continue;
                }
                Judged::NeedMore => {}
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client stopped sending: an unfinished head is dropped.
                this.pending.clear();
                return Poll::Ready(Ok(()));
            }
            this.pending.extend_from_slice(read.filled());
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// After a refused head: close our side, then read and drop what the client still sends
    /// (bounded), so that closing does not reset the connection under the answer.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.drain.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            if !matches!(this.state, State::Refused) {
                return Poll::Ready(Ok(()));
            }
            this.drain = Some((Box::pin(tokio::time::sleep(DRAIN_TIME)), 0));
        }
        let Some((timer, drained)) = this.drain.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if *drained >= DRAIN_BYTES || timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    *drained += read.filled().len();
                }
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
