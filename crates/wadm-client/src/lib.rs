//! A client library for the wadm NATS API.
