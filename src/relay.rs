//! The relay: how an admin that runs as a Swarm service reaches its cells.
//!
//! A service's task container cannot join an overlay network after it has
//! started (Docker refuses to attach a container Swarm manages), so the admin
//! service runs on the host's network and keeps a small standalone container,
//! `mtp-relay`, on its node. The relay is not managed by Swarm, so it can join
//! every tenant's attachable overlay; it listens on a private bridge that only
//! the host reaches, and for each connection it is told which gateway to dial:
//!
//! ```text
//! admin → relay:   mtp-relay 1 mtp-cell-acme 18789\n
//! relay → admin:   ok\n            (then bytes both ways)
//!                  err <reason>\n  (then the connection closes)
//! ```
//!
//! The relay dials only cells' service names on the gateway's port, and takes
//! connections only from the addresses it was started with (the bridge's host
//! side). The admin's side ([`Forwards`]) gives each gateway a listener on its
//! own loopback that goes through the relay, so the gateway client and the
//! HTTP probes dial a plain `127.0.0.1:<port>` as on a single host.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The port the relay listens on, on its bridge.
pub const RELAY_PORT: u16 = 7600;

/// The first line's greeting and version.
const GREETING: &str = "mtp-relay 1";

/// Longest first line either side sends.
const MAX_LINE: usize = 256;

/// How long a dial or a first line may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The only host names the relay dials: a cell's service name.
const CELL_PREFIX: &str = "mtp-cell-";

/// What the relay was told to dial, if it may: a cell's service name (`mtp-cell-`
/// and a tenant id's characters) on `gateway_port`.
///
/// # Errors
///
/// A line that is not the greeting with a cell's name and the gateway's port.
pub fn parse_request(line: &str, gateway_port: u16) -> anyhow::Result<(String, u16)> {
    let rest = line
        .strip_prefix(GREETING)
        .and_then(|rest| rest.strip_prefix(' '))
        .context("not a relay request")?;
    let (host, port) = rest.split_once(' ').context("no port")?;
    let id = host
        .strip_prefix(CELL_PREFIX)
        .context("only cells' gateways are relayed")?;
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("not a cell's service name");
    }
    let port: u16 = port.parse().context("not a port")?;
    if port != gateway_port {
        bail!("only the gateway's port is relayed");
    }
    Ok((host.to_string(), port))
}

/// Runs the relay until the process is stopped: listens on `listen`, takes
/// connections from `allowed` peers only, and joins each to the gateway it names.
///
/// # Errors
///
/// The listener cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    allowed: Vec<IpAddr>,
    gateway_port: u16,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, ?allowed, "relay listening");
    run(listener, allowed, gateway_port, None).await;
    Ok(())
}

/// The relay's accept loop; `dial_instead` sends every allowed request to one
/// address (tests, where no cell's name resolves).
async fn run(
    listener: TcpListener,
    allowed: Vec<IpAddr>,
    gateway_port: u16,
    dial_instead: Option<SocketAddr>,
) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, most likely: let some close.
                tracing::warn!(cause = %err, "relay accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !allowed.contains(&peer.ip()) {
            tracing::warn!(%peer, "relay refused a connection from an address it does not serve");
            continue;
        }
        tokio::spawn(async move {
            if let Err(err) = relay_one(inbound, gateway_port, dial_instead).await {
                tracing::info!(%peer, cause = %format!("{err:#}"), "relayed connection ended");
            }
        });
    }
}

async fn relay_one(
    inbound: TcpStream,
    gateway_port: u16,
    dial_instead: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let mut inbound = BufReader::new(inbound);
    let line = read_line(&mut inbound).await?;
    let (host, port) = match parse_request(&line, gateway_port) {
        Ok(target) => target,
        Err(err) => {
            let _ = inbound
                .get_mut()
                .write_all(format!("err {err}\n").as_bytes())
                .await;
            return Err(err);
        }
    };
    let dial = async {
        match dial_instead {
            Some(address) => TcpStream::connect(address).await,
            None => TcpStream::connect((host.as_str(), port)).await,
        }
    };
    let outbound = match tokio::time::timeout(STEP_TIMEOUT, dial).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            let reason = format!("{host}:{port}: {err}");
            let _ = inbound
                .get_mut()
                .write_all(format!("err {reason}\n").as_bytes())
                .await;
            bail!(reason);
        }
        Err(_) => {
            let _ = inbound
                .get_mut()
                .write_all(format!("err {host}:{port}: no answer in 10 s\n").as_bytes())
                .await;
            bail!("{host}:{port}: no answer in 10 s");
        }
    };
    let _ = outbound.set_nodelay(true);
    inbound.get_mut().write_all(b"ok\n").await?;
    splice(inbound, outbound).await
}

/// Joins two streams until either side closes; what `inbound` had buffered
/// beyond its first line goes to `outbound` first.
async fn splice(inbound: BufReader<TcpStream>, mut outbound: TcpStream) -> anyhow::Result<()> {
    let buffered = inbound.buffer().to_vec();
    let mut inbound = inbound.into_inner();
    if !buffered.is_empty() {
        outbound.write_all(&buffered).await?;
    }
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let read = tokio::time::timeout(STEP_TIMEOUT, async {
        let mut limited = (&mut *reader).take(MAX_LINE as u64);
        limited.read_until(b'\n', &mut line).await
    })
    .await
    .context("no first line in 10 s")??;
    if read == 0 || line.last() != Some(&b'\n') {
        bail!("no first line");
    }
    line.pop();
    String::from_utf8(line).context("a first line that is not text")
}

/// The admin's side: a loopback listener per gateway, each connection to it
/// carried through the relay at `relay`.
#[derive(Debug)]
pub struct Forwards {
    relay: SocketAddr,
    ports: Mutex<HashMap<(String, u16), u16>>,
}

impl Forwards {
    #[must_use]
    pub fn new(relay: SocketAddr) -> Forwards {
        Forwards {
            relay,
            ports: Mutex::new(HashMap::new()),
        }
    }

    /// The relay's address.
    #[must_use]
    pub fn relay(&self) -> SocketAddr {
        self.relay
    }

    /// The loopback port that reaches `host:port` through the relay; the
    /// listener is made on first use, in the calling Tokio runtime, and lives
    /// as long as it does.
    ///
    /// # Errors
    ///
    /// No loopback port can be bound, or no Tokio runtime runs.
    pub fn local_port(&self, host: &str, port: u16) -> std::io::Result<u16> {
        let mut ports = self
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(local) = ports.get(&(host.to_string(), port)) {
            return Ok(*local);
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?.port();
        let relay = self.relay;
        let target = (host.to_string(), port);
        let _guard = runtime.enter();
        let listener = TcpListener::from_std(listener)?;
        runtime.spawn(forward(listener, relay, target.clone()));
        ports.insert(target, local);
        Ok(local)
    }
}

async fn forward(listener: TcpListener, relay: SocketAddr, target: (String, u16)) {
    loop {
        let inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(err) => {
                // Out of descriptors, most likely: let some close.
                tracing::warn!(cause = %err, "a forward to the relay cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(err) = through_relay(inbound, relay, &target.0, target.1).await {
                tracing::warn!(relay = %relay, gateway = %format!("{}:{}", target.0, target.1), cause = %format!("{err:#}"), "cannot reach the gateway through the relay");
            }
        });
    }
}

async fn through_relay(
    inbound: TcpStream,
    relay: SocketAddr,
    host: &str,
    port: u16,
) -> anyhow::Result<()> {
    let outbound = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(relay))
        .await
        .context("the relay did not answer in 10 s")?
        .context("cannot connect to the relay")?;
    let _ = outbound.set_nodelay(true);
    let mut outbound = BufReader::new(outbound);
    outbound
        .get_mut()
        .write_all(format!("{GREETING} {host} {port}\n").as_bytes())
        .await?;
    let answer = read_line(&mut outbound).await?;
    if answer != "ok" {
        let reason = answer.strip_prefix("err ").unwrap_or(&answer);
        bail!("the relay refused: {reason}");
    }
    // What the relay sent after its answer goes to the client first.
    splice(outbound, inbound).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cells_on_the_gateway_port_are_relayed() {
        assert_eq!(
            parse_request("mtp-relay 1 mtp-cell-acme-2 18789", 18789).unwrap(),
            ("mtp-cell-acme-2".to_string(), 18789)
        );
        for bad in [
            "mtp-relay 1 mtp-cell-acme 22",
            "mtp-relay 1 example.com 18789",
            "mtp-relay 1 mtp-cell- 18789",
            "mtp-relay 1 mtp-cell-acme.evil.com 18789",
            "mtp-relay 1 mtp-cell-ACME 18789",
            "mtp-relay 2 mtp-cell-acme 18789",
            "mtp-relay 1 mtp-cell-acme",
            "GET / HTTP/1.1",
        ] {
            assert!(parse_request(bad, 18789).is_err(), "{bad}");
        }
    }

    async fn relay_to(allowed: &str, dial_instead: Option<SocketAddr>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(run(
            listener,
            vec![allowed.parse().unwrap()],
            18789,
            dial_instead,
        ));
        address
    }

    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn a_forward_carries_bytes_both_ways_through_the_relay() {
        let relay = relay_to("127.0.0.1", Some(echo().await)).await;
        let forwards = Forwards::new(relay);
        let port = forwards.local_port("mtp-cell-acme", 18789).unwrap();
        assert_eq!(
            forwards.local_port("mtp-cell-acme", 18789).unwrap(),
            port,
            "one listener per gateway"
        );
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut back = [0u8; 23];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"GET /healthz HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn the_relay_refuses_other_targets_and_other_peers() {
        let relay = relay_to("127.0.0.1", Some(echo().await)).await;
        let mut probe = TcpStream::connect(relay).await.unwrap();
        probe
            .write_all(b"mtp-relay 1 example.com 18789\n")
            .await
            .unwrap();
        let mut answer = String::new();
        probe.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("err only cells"), "{answer}");

        // A relay that serves another address closes at once.
        let elsewhere = relay_to("10.9.9.9", Some(echo().await)).await;
        let mut probe = TcpStream::connect(elsewhere).await.unwrap();
        let _ = probe.write_all(b"mtp-relay 1 mtp-cell-acme 18789\n").await;
        let mut answer = Vec::new();
        let _ = probe.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{answer:?}");

        // Through a forward, a refusal closes the client's connection.
        let forwards = Forwards::new(elsewhere);
        let port = forwards.local_port("mtp-cell-acme", 18789).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{rest:?}");
    }
}
