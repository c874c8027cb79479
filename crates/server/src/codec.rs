//! Lines of at most N bytes, LF or CRLF terminated, as raw bytes (UTF-8 is
//! checked per line, so one bad line gets an error and the next still works).
//! The `\n` is removed; a `\r` before it is left for the parser, which
//! drops exactly one.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

pub(crate) struct LineCodec {
    max: usize,
    /// How far the buffer has been searched for a newline.
    searched: usize,
}

#[derive(Debug)]
pub(crate) enum LineError {
    TooLong,
    Io(std::io::Error),
}

impl From<std::io::Error> for LineError {
    fn from(e: std::io::Error) -> Self {
        LineError::Io(e)
    }
}

impl LineCodec {
    pub fn new(max: usize) -> LineCodec {
        LineCodec { max, searched: 0 }
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        let end = buf.len().min(self.max + 2);
        match buf[self.searched..end].iter().position(|b| *b == b'\n') {
            Some(i) => {
                let nl = self.searched + i;
                self.searched = 0;
                let mut line = buf.split_to(nl + 1);
                line.truncate(nl);
                // A CRLF's `\r` stays: the parser drops one trailing `\r`,
                // and a second one is a control character (dropping one here
                // as well let `PING\r\r` through). It does not count
                // against the limit, being part of the terminator.
                let body = if line.last() == Some(&b'\r') { nl - 1 } else { nl };
                if body > self.max {
                    return Err(LineError::TooLong);
                }
                Ok(Some(line))
            }
            None if buf.len() > self.max + 1 => Err(LineError::TooLong),
            None => {
                self.searched = end;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        // A last line without its newline is not a request: the client went
        // away mid-line, and half a command is never executed.
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        buf.clear();
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut c = LineCodec::new(max);
        let mut b = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match c.decode(&mut b) {
                Ok(Some(l)) => out.push(Ok(l.to_vec())),
                Ok(None) => break,
                Err(_) => {
                    out.push(Err("too long"));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_lf_and_crlf() {
        assert_eq!(lines(b"PING\r\nPING\nPI", 10), vec![Ok(b"PING\r".to_vec()), Ok(b"PING".to_vec())]);
        assert_eq!(lines(b"PING\r\r\n", 10), vec![Ok(b"PING\r\r".to_vec())]);
    }

    #[test]
    fn refuses_long_lines() {
        assert_eq!(lines(b"0123456789\n", 10), vec![Ok(b"0123456789".to_vec())]);
        assert_eq!(lines(b"0123456789\r\n", 10), vec![Ok(b"0123456789\r".to_vec())]);
        assert_eq!(lines(b"0123456789\r\r\n", 10), vec![Err("too long")]);
        assert_eq!(lines(b"01234567890\n", 10), vec![Err("too long")]);
        assert_eq!(lines(b"0123456789012", 10), vec![Err("too long")]);
    }
}
