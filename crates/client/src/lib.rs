//! A Gridline protocol client: one TCP connection, requests written as lines,
//! replies read whole (an `OK count=N` line and its N item lines).

use gridline_protocol::{parse_reply_line, Fields, ReplyLine};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not the error's source as well: a chain of causes would say it twice.
    #[error("connection: {0}")]
    Io(std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("unreadable reply `{line}`: {why}")]
    Reply { line: String, why: String },
    #[error("ERR {code} \"{message}\"")]
    Server { code: String, message: String },
    /// No reply within the wait set by [`Client::set_reply_timeout`].
    #[error("no reply in {} s: the server is not answering", .0.as_secs_f64())]
    Timeout(std::time::Duration),
    /// No connection within the wait given to [`Client::connect_within`].
    #[error("no connection in {} s", .0.as_secs_f64())]
    NoConnection(std::time::Duration),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// A whole reply: its first line and, for lists, its item lines.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Ok { fields: Fields, items: Vec<(String, Fields)> },
    Err { code: String, message: String },
}

impl Reply {
    /// The fields of an `OK`, or the error as a `ClientError`.
    pub fn ok(self) -> Result<(Fields, Vec<(String, Fields)>), ClientError> {
        match self {
            Reply::Ok { fields, items } => Ok((fields, items)),
            Reply::Err { code, message } => Err(ClientError::Server { code, message }),
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Ok { .. })
    }

    pub fn err_code(&self) -> Option<&str> {
        match self {
            Reply::Err { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The `AUTH` request line for `token`, quoted as the protocol needs: a
/// secret in tokens.toml may hold a space, a quote or an `=`.
pub fn auth_request(token: &str) -> String {
    gridline_protocol::format_request(&gridline_model::Command::Auth { token: token.to_string() })
}

/// What the server sent with no request outstanding ([`Client::unasked`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Unasked {
    /// A line it sent before closing (an idle connection, one that did not
    /// authenticate in time); the connection is closed or about to be.
    Said(Reply),
    /// It closed the connection.
    Closed,
}

/// The longest reply line read (a case line with the longest text is ~15 KB).
pub const REPLY_LINE_BYTES_MAX: u64 = 1 << 20;

pub struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: BufWriter<OwnedWriteHalf>,
    line: String,
    reply_timeout: Option<std::time::Duration>,
}

impl Client {
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Client { rd: BufReader::new(r), wr: BufWriter::new(w), line: String::new(), reply_timeout: None })
    }

    /// Connects, waiting at most `wait` for the connection and then, as
    /// [`set_reply_timeout`](Self::set_reply_timeout) sets, for each line
    /// of every reply.
    pub async fn connect_within(
        addr: impl ToSocketAddrs,
        wait: std::time::Duration,
    ) -> Result<Client, ClientError> {
        let mut c = tokio::time::timeout(wait, Client::connect(addr))
            .await
            .map_err(|_| ClientError::NoConnection(wait))??;
        c.set_reply_timeout(Some(wait));
        Ok(c)
    }

    /// From now on, waits at most `wait` for each line of a reply (`None`:
    /// as long as it takes, the default); a wait that passes is
    /// [`ClientError::Timeout`], after which the connection is not to be
    /// used again (a reply may be half read).
    pub fn set_reply_timeout(&mut self, wait: Option<std::time::Duration>) {
        self.reply_timeout = wait;
    }

    /// Connects and authenticates with `token`.
    pub async fn connect_auth(addr: impl ToSocketAddrs, token: &str) -> Result<Client, ClientError> {
        let mut c = Client::connect(addr).await?;
        c.call(&auth_request(token)).await?.ok()?;
        Ok(c)
    }

    /// Queues one request line (without terminator); `flush` sends.
    pub async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        self.wr.write_all(line.as_bytes()).await?;
        self.wr.write_all(b"\n").await?;
        Ok(())
    }

    /// Sends raw bytes as they are (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.wr.write_all(bytes).await?;
        self.wr.flush().await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.wr.flush().await?;
        Ok(())
    }

    /// Whether a whole reply line has already arrived and waits in the
    /// read buffer, so that [`read_line`](Self::read_line) returns it
    /// without waiting on the socket. A pipelining client reads every such
    /// line before it sends the next requests, in one write.
    pub fn line_buffered(&self) -> bool {
        self.rd.buffer().contains(&b'\n')
    }

    /// Reads one raw line, without its terminator; `None` at end of stream.
    /// A last line the stream ends in the middle of is not a line: the
    /// connection closed while the server wrote it ([`ClientError::Closed`]).
    pub async fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        self.line.clear();
        let wait = self.reply_timeout;
        let mut limited = (&mut self.rd).take(REPLY_LINE_BYTES_MAX);
        let read = limited.read_line(&mut self.line);
        let n = match wait {
            None => read.await?,
            Some(w) => tokio::time::timeout(w, read).await.map_err(|_| ClientError::Timeout(w))??,
        };
        if n == 0 {
            return Ok(None);
        }
        if !self.line.ends_with('\n') && n as u64 == REPLY_LINE_BYTES_MAX {
            return Err(ClientError::Reply {
                line: self.line.chars().take(80).collect(),
                why: format!("reply line longer than {REPLY_LINE_BYTES_MAX} bytes"),
            });
        }
        if !self.line.ends_with('\n') {
            return Err(ClientError::Closed);
        }
        let l = self.line.trim_end_matches(['\n', '\r']);
        Ok(Some(l.to_string()))
    }

    /// Reads one whole reply.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let first = self.read_line().await?.ok_or(ClientError::Closed)?;
        let parsed =
            parse_reply_line(&first).map_err(|e| ClientError::Reply { line: first.clone(), why: e.0 })?;
        match parsed {
            // Any well-formed code, known to this version or not.
            ReplyLine::Err { code, message } => Ok(Reply::Err { code: code.as_str().to_string(), message }),
            ReplyLine::Item { .. } => {
                Err(ClientError::Reply { line: first, why: "an item line where a reply starts".into() })
            }
            ReplyLine::Ok(fields) => {
                let n: usize = fields.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
                // `count` comes from the other side: trust it for the loop, not for memory.
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let l = self.read_line().await?.ok_or(ClientError::Closed)?;
                    match parse_reply_line(&l) {
                        Ok(ReplyLine::Item { kind, fields }) => items.push((kind, fields)),
                        _ => return Err(ClientError::Reply { line: l, why: "expected an item line".into() }),
                    }
                }
                Ok(Reply::Ok { fields, items })
            }
        }
    }

    /// What the server sent or did unasked, looking without waiting: call
    /// it only with no request outstanding, before sending the next one,
    /// so that a line the server sent before closing the connection is not
    /// taken for that request's reply. `None`: nothing.
    pub async fn unasked(&mut self) -> Result<Option<Unasked>, ClientError> {
        // A zero timeout polls the read once: ready data or end of stream.
        match tokio::time::timeout(std::time::Duration::ZERO, self.rd.fill_buf()).await {
            Err(_) => Ok(None),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok([])) => Ok(Some(Unasked::Closed)),
            Ok(Ok(_)) => match self.read_reply().await {
                Ok(r) => Ok(Some(Unasked::Said(r))),
                Err(ClientError::Closed) => Ok(Some(Unasked::Closed)),
                Err(e) => Err(e),
            },
        }
    }

    /// Sends one request and reads its reply.
    ///
    /// When the request cannot be sent whole, the server may already have
    /// answered it and closed: a line longer than its limit gets
    /// `ERR too_large` and a close, and the rest of a line longer than the
    /// sockets' buffers then fails to send (a broken pipe, a reset). That
    /// answer, if it is there, is the reply; without one the failure to
    /// send is the error. (After a failed send the connection is gone, so
    /// the read does not wait.)
    pub async fn call(&mut self, line: &str) -> Result<Reply, ClientError> {
        let sent = match self.send(line).await {
            Ok(()) => self.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            return self.read_reply().await.map_err(|_| e);
        }
        self.read_reply().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A client built today reads an error code a later server adds.
    #[tokio::test]
    async fn an_unknown_error_code_is_read_as_it_is() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"ERR rate_limited \"slow down\"\nOK pong=yes\n").await.unwrap();
            let mut buf = [0u8; 64];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        });
        let mut c = Client::connect(addr).await.unwrap();
        let r = c.read_reply().await.unwrap();
        assert_eq!(r, Reply::Err { code: "rate_limited".into(), message: "slow down".into() });
        assert!(c.read_reply().await.unwrap().is_ok(), "the connection stays readable");
        drop(c);
        server.await.unwrap();
    }

    /// A reply line the connection closes in the middle of is not a reply:
    /// `OK pong=ye` cut off is not `OK pong=ye`.
    #[tokio::test]
    async fn a_reply_line_cut_off_by_the_close_is_not_a_reply() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"OK count=1\nROW a=1\nOK pong=ye").await.unwrap();
        });
        let mut c = Client::connect(addr).await.unwrap();
        assert!(c.read_reply().await.unwrap().is_ok(), "a whole reply is read");
        server.await.unwrap();
        let r = c.read_reply().await;
        assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    }

    /// `line_buffered` tells a line that has arrived from one still on its
    /// way, and from a part of a line.
    #[tokio::test]
    async fn a_buffered_line_is_told_from_one_still_to_come() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"OK a=1\nOK a=2\nOK a=").await.unwrap();
            wait.await.unwrap();
            s.write_all(b"3\n").await.unwrap();
        });
        let mut c = Client::connect(addr).await.unwrap();
        assert!(!c.line_buffered(), "nothing read yet");
        assert_eq!(c.read_line().await.unwrap().as_deref(), Some("OK a=1"));
        assert!(c.line_buffered(), "the second line came with the first");
        assert_eq!(c.read_line().await.unwrap().as_deref(), Some("OK a=2"));
        assert!(!c.line_buffered(), "only part of the third has come");
        go.send(()).unwrap();
        assert_eq!(c.read_line().await.unwrap().as_deref(), Some("OK a=3"));
        assert!(!c.line_buffered());
        server.await.unwrap();
    }

    /// A line the server sent unasked before closing an idle connection is
    /// found as such, then the close; with nothing sent, nothing is found,
    /// without waiting.
    #[tokio::test]
    async fn what_the_server_sends_unasked_is_told_apart_from_a_reply() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            ready.await.unwrap();
            s.write_all(b"ERR bad_request \"idle for 1s; closing\"\n").await.unwrap();
        });
        let mut c = Client::connect(addr).await.unwrap();
        assert_eq!(c.unasked().await.unwrap(), None, "nothing sent yet");
        go.send(()).unwrap();
        server.await.unwrap();
        // The line and the close are on their way: wait for each to arrive
        // (a liveness bound, not a timing).
        let mut next = async || {
            let wait = async {
                loop {
                    if let Some(u) = c.unasked().await.unwrap() {
                        return u;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(60), wait).await.expect("it arrives")
        };
        let idle = Reply::Err { code: "bad_request".into(), message: "idle for 1s; closing".into() };
        assert_eq!(next().await, Unasked::Said(idle));
        assert_eq!(next().await, Unasked::Closed);
    }

    /// Any secret tokens.toml holds is sent as one value: a hand-written one
    /// with a space or a quote in it too.
    #[test]
    fn a_token_is_quoted_as_the_protocol_needs() {
        assert_eq!(auth_request("0123abcd"), "AUTH token=0123abcd");
        for t in ["pass phrase with spaces", "has\"quote", "a=b", "back\\slash"] {
            let line = auth_request(t);
            let cmd = gridline_protocol::parse_request(&line).unwrap();
            assert_eq!(cmd, gridline_model::Command::Auth { token: t.to_string() }, "{line}");
        }
    }

    /// An IO error is told once, not once by the error and again by its source.
    #[test]
    fn an_io_error_reads_once() {
        let e = ClientError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        let mut chain = vec![e.to_string()];
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push(s.to_string());
            src = s.source();
        }
        assert_eq!(chain.join(": ").matches("refused").count(), 1, "{chain:?}");
    }
}
