//! The JetStream streams of one NATS account's lattices in account-scoped mode: a stream holds
//! the subjects of one account only (`{account}.wasmbus.evt.*.>`…), because a stream subject
//! may not start with a wildcard, and so each account's events, commands and statuses are kept,
//! limited and removed apart from the others'.

/// The name of `base`'s stream for `account` (`{base}_{account}`), or `base` itself without one.
/// Account tokens hold only letters, digits, `-` and `_` (see
/// [`wadm_protocol::names::account_error`]), so the name is a valid stream name.
pub fn stream_name(base: &str, account: Option<&str>) -> String {
    match account {
        Some(account) => format!("{base}_{account}"),
        None => base.to_string(),
    }
}

/// `subject` behind `account`'s token, or as it is without one.
pub fn stream_subject(subject: &str, account: Option<&str>) -> String {
    match account {
        Some(account) => format!("{account}.{subject}"),
        None => subject.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects() {
        assert_eq!(stream_name("wadm_events", None), "wadm_events");
        assert_eq!(stream_name("wadm_events", Some("ACC")), "wadm_events_ACC");
        assert_eq!(stream_subject("wadm.cmd.>", Some("ACC")), "ACC.wadm.cmd.>");
        assert_eq!(stream_subject("wadm.cmd.>", None), "wadm.cmd.>");
    }
}
