//! The OpenClaw gateway client: protocol types, WebSocket RPC, device identity, HTTP probes.
