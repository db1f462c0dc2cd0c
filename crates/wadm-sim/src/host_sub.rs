//! Each host's own subscription, `wasmbus.ctl.v1.{lattice}.*.*.{host}`: one per host covers all
//! eight host-addressed subjects, so a request to a host that is not running (never started,
//! stopped or crashed) gets NATS "no responders", as on a real lattice. Messages are forwarded
//! to the lattice's single dispatcher, which keeps handling sequential.

use async_nats::{Client, Message};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

/// A live host subscription; unsubscribes when closed or dropped.
pub(crate) struct HostSubscription {
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

/// The subject of a host's subscription.
pub(crate) fn host_subject(prefix: &str, host_id: &str) -> String {
    format!("{prefix}.*.*.{host_id}")
}

/// Subscribe for `host_id` and forward its messages to `forward`.
pub(crate) async fn subscribe_host(
    client: &Client,
    prefix: &str,
    host_id: &str,
    forward: mpsc::Sender<Message>,
) -> Result<HostSubscription, async_nats::SubscribeError> {
    let mut sub = client.subscribe(host_subject(prefix, host_id)).await?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else { break };
                    if forward.send(msg).await.is_err() {
                        break;
                    }
                }
                _ = &mut stop_rx => {
                    let _ = sub.unsubscribe().await;
                    break;
                }
            }
        }
        let _ = done_tx.send(());
    });
    Ok(HostSubscription { stop: Some(stop_tx), done: Some(done_rx) })
}

impl HostSubscription {
    /// Ask for the unsubscribe; the returned receiver resolves once it has been sent.
    pub(crate) fn close(&mut self) -> Option<oneshot::Receiver<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.take()
    }
}

impl Drop for HostSubscription {
    fn drop(&mut self) {
        self.close();
    }
}
