//! Request routing: which simulated host handles a control request (every host, one of them in
//! round-robin, or the addressed one), fault-aware delays, and publishing the reply and the
//! events that follow.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, Subject};
use bytes::Bytes;
use rand::Rng;

use crate::outcome::{Outcome, SimEvent};
use crate::route::{Route, route};
use crate::runtime::{Inner, LiveHost, Origin};

impl Inner {
    pub(crate) async fn dispatch(self: &Arc<Self>, msg: Message, origin: Origin) {
        let Some(rest) = msg.subject.as_str().strip_prefix(&self.prefix) else { return };
        let Some(route) = rest.strip_prefix('.').and_then(route) else { return };
        // A host subscription also matches e.g. `config.get.{name}` when the name is a host id:
        // the shared queue subscription serves that one.
        if matches!(route, Route::Host(..)) != (origin == Origin::HostSubscription) {
            return;
        }
        let targets: Vec<(String, Duration)> = {
            let mut st = self.lock();
            let delay = |h: &LiveHost| h.faults.reply_delay();
            match &route {
                Route::All(_) => st.hosts.iter().map(|(id, h)| (id.clone(), delay(h))).collect(),
                Route::Host(_, id) => {
                    st.hosts.get(*id).map(|h| ((*id).to_string(), delay(h))).into_iter().collect()
                }
                Route::One(..) => {
                    let n = st.hosts.len();
                    let pick = st.next_one % n.max(1);
                    st.next_one = st.next_one.wrapping_add(1);
                    let chosen = st.hosts.iter().nth(pick);
                    chosen.map(|(id, h)| (id.clone(), delay(h))).into_iter().collect()
                }
            }
        };
        let subject = msg.subject.to_string();
        for (host_id, delay) in targets {
            if delay.is_zero() {
                self.handle(&host_id, &subject, &msg.payload, msg.reply.clone()).await;
            } else {
                let (inner, payload, reply) =
                    (self.clone(), msg.payload.clone(), msg.reply.clone());
                let subject = subject.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.handle(&host_id, &subject, &payload, reply).await;
                });
            }
        }
    }

    /// Handle one request as `host_id`, then publish its reply and (surviving) events.
    async fn handle(&self, host_id: &str, subject: &str, body: &[u8], reply: Option<Subject>) {
        let rest = subject.strip_prefix(&self.prefix).and_then(|r| r.strip_prefix('.'));
        let Some(route) = rest.and_then(route) else {
            return;
        };
        if let Some(bytes) = self.broken_answer(host_id, &route) {
            if let Some(reply_to) = reply
                && let Err(e) = self.client.publish(reply_to, Bytes::from(bytes)).await
            {
                tracing::warn!(host_id, error = %e, "simulated host could not reply");
            }
            return;
        }
        let (outcome, events) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(host) = st.hosts.get_mut(host_id) else { return };
            let before: Vec<(String, u32)> =
                host.state.components.iter().map(|(id, c)| (id.clone(), c.count)).collect();
            let uptime = host.started.elapsed();
            let faults = host.faults.clone();
            if faults.ignores_requests() {
                st.records.entry(host_id.to_string()).or_default().requests.record(route.kind());
                return;
            }
            let outcome = match route {
                Route::All("host.ping") => {
                    host.state.ping(&self.config.lattice, uptime, &self.config.nats_url)
                }
                Route::All("component.auction") => host.state.component_auction(body),
                Route::All(_) => host.state.provider_auction(body),
                Route::Host("host.get", _) => Outcome::with(host.state.inventory(uptime)),
                Route::Host("host.stop", _) => host.state.stop(),
                Route::Host("component.scale", _) => host.state.scale(body, &st.store, &faults),
                Route::Host("component.update", _) => host.state.update(body, &faults),
                Route::Host("provider.start", _) => {
                    host.state.start_provider(body, &st.store, &faults)
                }
                Route::Host("provider.stop", _) => host.state.stop_provider(body),
                Route::Host("label.put", _) => host.state.put_label(body),
                Route::Host(_, _) => host.state.delete_label(body),
                Route::One("link.put", _) => st.store.link_put(body),
                Route::One("link.del", _) => st.store.link_del(body),
                Route::One("link.get", _) => st.store.link_get(),
                Route::One("claims.get", _) => st.store.claims_get(),
                Route::One("config.put", Some(name)) => st.store.config_put(name, body),
                Route::One("config.get", Some(name)) => st.store.config_get(name),
                Route::One(_, name) => st.store.config_del(name.unwrap_or_default()),
            };
            let record = st.records.entry(host_id.to_string()).or_default();
            record.requests.record(route.kind());
            if let Some(host) = st.hosts.get(host_id) {
                for (id, c) in &host.state.components {
                    let seen = record.max_seen.entry(id.clone()).or_default();
                    *seen = (*seen).max(c.count);
                }
                let after = &host.state.components;
                for (id, was) in &before {
                    st.totals.change(id, *was, after.get(id).map_or(0, |c| c.count));
                }
                for (id, c) in after {
                    if !before.iter().any(|(b, _)| b == id) {
                        st.totals.change(id, 0, c.count);
                    }
                }
            }
            if outcome.stop_host
                && let Some(live) = st.hosts.remove(host_id)
            {
                st.totals.host_gone(&live.state.components);
                live.heartbeat.abort();
            }
            let drop_share = faults.drop_events();
            let events: Vec<SimEvent> = outcome
                .events
                .iter()
                .filter(|_| drop_share <= 0.0 || st.rng.random::<f64>() >= drop_share)
                .cloned()
                .collect();
            let dropped = (outcome.events.len() - events.len()) as u64;
            if let Some(record) = st.records.get_mut(host_id) {
                record.events.dropped += dropped;
            }
            (outcome, events)
        };
        if let (Some(reply_to), Some(body)) = (reply, &outcome.reply) {
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            if let Err(e) = self.client.publish(reply_to, Bytes::from(bytes)).await {
                tracing::warn!(host_id, error = %e, "simulated host could not reply");
            }
        }
        for event in events {
            self.publish_event(host_id, event).await;
        }
    }

    /// The answer of a host with a broken workload fault (refuse, garble, swallow) to a workload
    /// request (component scale/update, provider start/stop), which it then does not act on;
    /// `None`: handled as usual. The request is counted.
    fn broken_answer(&self, host_id: &str, route: &Route<'_>) -> Option<Vec<u8>> {
        /// What a garbling host answers.
        const GARBLE: &[u8] = b"\x00<html>not a control reply";
        let workload = matches!(
            route,
            Route::Host("component.scale" | "component.update", _)
                | Route::Host("provider.start" | "provider.stop", _)
        );
        if !workload {
            return None;
        }
        let mut st = self.lock();
        let faults = st.hosts.get(host_id)?.faults.clone();
        let reply = if faults.ignores_requests() {
            return None;
        } else if faults.garbles_workloads() {
            GARBLE.to_vec()
        } else if faults.refuses_workloads() {
            let refused = Outcome::error("simulated fault: request refused").reply;
            serde_json::to_vec(&refused).unwrap_or_default()
        } else if faults.swallows_workloads() {
            serde_json::to_vec(&Outcome::ok().reply).unwrap_or_default()
        } else {
            return None;
        };
        st.records.entry(host_id.to_string()).or_default().requests.record(route.kind());
        Some(reply)
    }
}
