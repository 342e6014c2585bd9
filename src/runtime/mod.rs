//! The container runtime: cells on Docker through bollard.
