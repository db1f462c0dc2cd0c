//! The wadm API server.
