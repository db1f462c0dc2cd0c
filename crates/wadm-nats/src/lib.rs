//! The NATS I/O layer of wadm: everything that touches a NATS connection lives here.
