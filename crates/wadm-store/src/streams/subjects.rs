//! The subjects wadm's two streams capture, per lattice `L` (behind the account token of a
//! lattice of another account: see [`wadm_protocol::subject::split_account`]):
//! - event stream: `wasmbus.evt.L.>` (host CloudEvents), `wadm.evt.L.>` (the API server's
//!   manifest events) and `wadm.internal.L.>` (the runtime's own events);
//! - command stream: `wadm.cmd.L.{app}`.

use wadm_protocol::subject::scoped;

/// Subject prefix of the runtime's own events.
pub const INTERNAL_PREFIX: &str = "wadm.internal";
/// Subject prefix of command messages.
pub const COMMAND_PREFIX: &str = "wadm.cmd";

/// `wadm.internal.{lattice}.{kind}`.
pub fn internal_subject(lattice: &str, kind: &str) -> String {
    scoped(lattice, |name| format!("{INTERNAL_PREFIX}.{name}.{kind}"))
}

/// `wadm.cmd.{lattice}.{app}`.
pub fn command_subject(lattice: &str, app: &str) -> String {
    scoped(lattice, |name| format!("{COMMAND_PREFIX}.{name}.{app}"))
}

/// The event-stream subjects of one lattice (the filters of its consumer).
pub fn event_filters(lattice: &str) -> Vec<String> {
    vec![
        scoped(lattice, |name| format!("wasmbus.evt.{name}.>")),
        scoped(lattice, |name| format!("wadm.evt.{name}.>")),
        scoped(lattice, |name| format!("{INTERNAL_PREFIX}.{name}.>")),
    ]
}

/// The command-stream subjects of one lattice.
pub fn command_filter(lattice: &str) -> String {
    scoped(lattice, |name| format!("{COMMAND_PREFIX}.{name}.>"))
}

/// Every lattice's event-stream subjects (what the event stream captures): one lattice's
/// filters with the lattice a wildcard.
pub(crate) fn all_events() -> Vec<String> {
    event_filters("*")
}

/// Every lattice's command subjects (what the command stream captures).
pub(crate) fn all_commands() -> String {
    format!("{COMMAND_PREFIX}.>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lattices_subjects() {
        assert_eq!(internal_subject("l", "tick"), "wadm.internal.l.tick");
        assert_eq!(command_subject("l", "app"), "wadm.cmd.l.app");
        assert_eq!(command_filter("l"), "wadm.cmd.l.>");
        assert_eq!(event_filters("l"), ["wasmbus.evt.l.>", "wadm.evt.l.>", "wadm.internal.l.>"]);
        assert_eq!(all_events(), ["wasmbus.evt.*.>", "wadm.evt.*.>", "wadm.internal.*.>"]);
        // Behind the account token.
        assert_eq!(internal_subject("ACC.l", "tick"), "ACC.wadm.internal.l.tick");
        assert_eq!(command_subject("ACC.l", "app"), "ACC.wadm.cmd.l.app");
        assert_eq!(command_filter("ACC.l"), "ACC.wadm.cmd.l.>");
        assert_eq!(event_filters("ACC.l")[1], "ACC.wadm.evt.l.>");
    }
}
