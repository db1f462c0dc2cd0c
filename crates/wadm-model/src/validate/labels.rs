//! Label and annotation key syntax: an optional DNS-subdomain prefix and `/`, then a name of
//! 1–63 characters from `[A-Za-z0-9._-]` that starts and ends with a letter or digit.

use crate::diag::{Diagnostics, Path};

/// Reports `key` when it is not a valid label/annotation key. `what` is `"label"` or
/// `"annotation"`.
pub(super) fn check_key(key: &str, path: &Path, what: &str, d: &mut Diagnostics) {
    if let Err(reason) = key_problem(key) {
        d.error(path, "bad-label-key", format!("`{key}` is not a valid {what} key: {reason}"));
    }
}

fn key_problem(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix)?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("the name part must be 1 to 63 characters".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err("the name part may only contain letters, digits, `.`, `_` and `-`".into());
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err("the name part must start and end with a letter or digit".into());
    }
    Ok(())
}

fn dns_subdomain(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 253 {
        return Err("the prefix must be a DNS subdomain of 1 to 253 characters".into());
    }
    for segment in prefix.split('.') {
        let ok = !segment.is_empty()
            && segment.len() <= 63
            && segment.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !segment.starts_with('-')
            && !segment.ends_with('-');
        if !ok {
            return Err(format!(
                "the prefix `{prefix}` is not a DNS subdomain (lowercase letters, digits, `-` and `.`)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key_problem;

    #[test]
    fn accepts_the_usual_keys() {
        for key in
            ["version", "description", "experimental.wasmcloud.dev/shared", "app.oam.io/name", "a"]
        {
            assert!(key_problem(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_malformed_keys() {
        let long = "x".repeat(64);
        for key in ["", "-a", "a-", "a b", "/a", "Upper.Case/a", "a/", "a/b/c", long.as_str()] {
            assert!(key_problem(key).is_err(), "{key}");
        }
    }
}
