//! The few Engine API calls bollard 0.19 does not make (a service's logs),
//! as one plain HTTP/1.0 request on the engine's socket: the answer ends with
//! the connection, so no chunked body is to be undone.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::{Error, Result, Runtime};

/// Largest answer read (a service's whole rotated log is a few tens of MB).
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Address {
    Unix(PathBuf),
    /// `host:port`, loopback by MTP's rules.
    Tcp(String),
}

impl Address {
    /// The address of `docker_host` (`unix://…`, `http://host:port`,
    /// `tcp://host:port`), or of `DOCKER_HOST`, or the default socket, as
    /// bollard resolves it.
    pub(super) fn of(docker_host: Option<&str>) -> Address {
        let host = docker_host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        if let Some(path) = host.strip_prefix("unix://") {
            return Address::Unix(PathBuf::from(path));
        }
        let rest = host
            .strip_prefix("http://")
            .or_else(|| host.strip_prefix("tcp://"))
            .unwrap_or(&host);
        Address::Tcp(rest.trim_end_matches('/').to_string())
    }
}

impl Runtime {
    /// `GET path` (with its query, without the version prefix) on the engine;
    /// the status code and the body.
    pub(super) async fn raw_get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let version = self.docker().client_version();
        let request = format!(
            "GET /v{}.{}{path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: mtp\r\n\r\n",
            version.major_version, version.minor_version
        );
        let unreachable = |err: std::io::Error| Error::Unreachable {
            cause: err.to_string(),
        };
        let answer = match &self.address {
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                exchange(stream, &request).await
            }
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(unreachable)?;
                exchange(stream, &request).await
            }
        }
        .map_err(unreachable)?;
        parse_answer(&answer)
    }
}

/// Sends `request` and reads the answer to the end of the connection.
async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES as u64)
        .read_to_end(&mut answer)
        .await?;
    Ok(answer)
}

/// The status code and body of an HTTP/1.x answer read to its end.
fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>)> {
    let bad = || Error::Other("the Docker engine's answer is not HTTP".to_string());
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| bad())?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = &answer[end + 4..];
    if chunked {
        return Ok((status, dechunk(body).ok_or_else(bad)?));
    }
    Ok((status, body.to_vec()))
}

/// A chunked body undone (an engine may chunk even an HTTP/1.0 answer).
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut res = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(res);
        }
        res.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// The frames of Docker's multiplexed log stream (8-byte headers: the stream,
/// three zero bytes, the big-endian length), as bollard's log items.
pub(super) fn demultiplex(mut body: &[u8]) -> Vec<bollard::container::LogOutput> {
    let mut res = Vec::new();
    while body.len() >= 8 {
        let stream = body[0];
        let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let Some(payload) = body.get(8..8 + len) else {
            break;
        };
        let message = bytes::Bytes::copy_from_slice(payload);
        res.push(match stream {
            2 => bollard::container::LogOutput::StdErr { message },
            0 => bollard::container::LogOutput::StdIn { message },
            _ => bollard::container::LogOutput::StdOut { message },
        });
        body = &body[8 + len..];
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_bollard_reads_them() {
        assert_eq!(
            Address::of(Some("unix:///run/docker.sock")),
            Address::Unix(PathBuf::from("/run/docker.sock"))
        );
        assert_eq!(
            Address::of(Some("http://127.0.0.1:2375")),
            Address::Tcp("127.0.0.1:2375".to_string())
        );
        assert_eq!(
            Address::of(Some("tcp://127.0.0.1:2375/")),
            Address::Tcp("127.0.0.1:2375".to_string())
        );
    }

    #[test]
    fn answers_plain_and_chunked() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\nhello";
        assert_eq!(parse_answer(plain).unwrap(), (200, b"hello".to_vec()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked).unwrap(), (404, b"abcde".to_vec()));
        assert!(parse_answer(b"garbage").is_err());
    }

    #[test]
    fn frames_split_by_stream() {
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 3];
        body.extend_from_slice(b"ab\n");
        body.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        body.extend_from_slice(b"x\n");
        // A cut frame at the end is dropped.
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 9, b'z']);
        let frames = demultiplex(&body);
        assert_eq!(frames.len(), 2);
        assert!(
            matches!(&frames[0], bollard::container::LogOutput::StdOut { message } if &message[..] == b"ab\n")
        );
        assert!(
            matches!(&frames[1], bollard::container::LogOutput::StdErr { message } if &message[..] == b"x\n")
        );
    }
}
