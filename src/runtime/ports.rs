//! Host port checks for publishing a cell's gateway on 127.0.0.1.

use std::net::{Ipv4Addr, TcpListener};

/// True when nothing on the host listens on `port`, on loopback or on all
/// addresses. A port Docker already publishes is held by docker-proxy, so it
/// shows as taken too.
#[must_use]
pub fn port_is_free(port: u16) -> bool {
    // Binding is the only reliable test; the listener is dropped at once.
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}
