//! Derived names: component and provider ids, owned config names and secret config names.
//!
//! These follow upstream wadm exactly, because existing deployments and tests depend on them.
//! Sanitising lowercases the input and replaces every character that is not an ASCII letter or
//! digit with `_`.

/// The longest application name, in bytes (it is a subject token and part of storage keys).
pub const MAX_APP_NAME_LEN: usize = 128;

/// Why `name` cannot name an application, if it cannot: letters, digits, `-` and `_` only, at
/// least one, at most [`MAX_APP_NAME_LEN`] bytes.
pub fn app_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an application name is empty".into());
    }
    if name.len() > MAX_APP_NAME_LEN {
        return Some(format!(
            "an application name is at most {MAX_APP_NAME_LEN} bytes (this one has {})",
            name.len()
        ));
    }
    (!name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')).then(|| {
        format!("`{name}` is not a valid application name: use letters, digits, `-` and `_` only")
    })
}

/// The longest name or id a manifest may introduce that becomes a subject token or part of a
/// storage key (component names and ids, link names and interfaces, config and secret names,
/// and the lattice names derived from them), in bytes. It is the bound wadm applies to the same
/// ids in host events (`wadm_protocol::names::MAX_ID_LEN`), so whatever a manifest may name, a
/// host may report back, and no control subject wadm builds from it nears NATS's 4 KiB line.
pub const MAX_NAME_LEN: usize = 256;

/// Why `name`, which a manifest calls `what` (`"a config name"`), is too long, if it is: longer
/// than [`MAX_NAME_LEN`] bytes. The name itself is not echoed (it may be huge).
pub fn name_len_error(what: &str, name: &str) -> Option<String> {
    (name.len() > MAX_NAME_LEN)
        .then(|| format!("{what} is at most {MAX_NAME_LEN} bytes (this one has {})", name.len()))
}

/// Lowercase, then replace every non-ASCII-alphanumeric character with `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '_' }
        })
        .collect()
}

/// The id of a component or provider without an explicit `id`: `{app}-{component}`, both sanitised.
pub fn component_id(app_name: &str, component_name: &str) -> String {
    format!("{}-{}", sanitize(app_name), sanitize(component_name))
}

/// The lattice name of a config owned by the application (one that carries `properties`).
pub fn owned_config_name(app_name: &str, config_name: &str) -> String {
    format!("{}-{}", sanitize(app_name), sanitize(config_name))
}

/// The lattice name of the config that carries a secret reference.
pub fn secret_config_name(app_name: &str, secret_name: &str) -> String {
    format!("SECRET_{}-{}", sanitize(app_name), sanitize(secret_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_upstream() {
        assert_eq!(component_id("hello-simple", "hello"), "hello_simple-hello");
        assert_eq!(component_id("My.App", "Http Server"), "my_app-http_server");
        assert_eq!(owned_config_name("hello-world", "default-http"), "hello_world-default_http");
        assert_eq!(secret_config_name("app", "db-pass"), "SECRET_app-db_pass");
        assert_eq!(sanitize("ünï"), "_n_");
    }

    #[test]
    fn name_lengths() {
        assert_eq!(name_len_error("a config name", &"c".repeat(MAX_NAME_LEN)), None);
        assert_eq!(
            name_len_error("a config name", &"c".repeat(5000)).unwrap(),
            "a config name is at most 256 bytes (this one has 5000)"
        );
    }
}
