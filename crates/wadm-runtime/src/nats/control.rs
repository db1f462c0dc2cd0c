//! Lattice control requests over core NATS request/reply.

use std::time::Duration;

use async_nats::{Client, RequestErrorKind};

use crate::io::{ControlClient, IoError};

/// Sends control requests on one connection.
#[derive(Clone)]
pub struct NatsControl {
    client: Client,
}

impl NatsControl {
    /// Sends control requests over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ControlClient for NatsControl {
    async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, IoError> {
        let request = async_nats::Request::new().payload(body.into()).timeout(Some(timeout));
        match self.client.send_request(subject.to_string(), request).await {
            Ok(reply) => Ok(reply.payload.to_vec()),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::TimedOut => IoError::Timeout { what: subject.to_string() },
                RequestErrorKind::NoResponders => {
                    IoError::NoResponders { what: subject.to_string() }
                }
                _ => IoError::failed(subject, e),
            }),
        }
    }

    async fn notify(&self, subject: &str, payload: Vec<u8>) -> Result<(), IoError> {
        self.client
            .publish(subject.to_string(), payload.into())
            .await
            .map_err(|e| IoError::failed(subject, e))
    }
}
