//! Simulated wasmCloud hosts.
