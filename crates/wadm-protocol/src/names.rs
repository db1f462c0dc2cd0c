//! Bounds on the names that enter wadm from outside (lattice names from subjects and flags, ids
//! from host events and answers): each ends up in subjects, stream consumer names and storage
//! keys, which NATS limits (a consumer name to 255 bytes, a protocol line to 4 KiB by default).
//! A name past these bounds is refused where it enters, with the reason, instead of failing
//! deep inside a write.

/// The longest lattice name, in bytes. Escaped for a key (at most 3 bytes per byte) it stays
/// well inside a consumer name.
pub const MAX_LATTICE_LEN: usize = 64;

/// The longest id a host may report (host, component, provider, link name, config name…), in
/// bytes. wasmCloud host ids are 56 characters.
pub const MAX_ID_LEN: usize = 256;

/// Why `name` cannot be a lattice name, if it cannot: a lattice is one NATS subject token of at
/// most [`MAX_LATTICE_LEN`] bytes.
pub fn lattice_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a lattice name is empty".into());
    }
    if name.len() > MAX_LATTICE_LEN {
        return Some(format!(
            "a lattice name is at most {MAX_LATTICE_LEN} bytes (this one has {})",
            name.len()
        ));
    }
    if name.contains(['.', '*', '>']) || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(
            "a lattice name is one subject token (no '.', '*', '>', spaces or control characters)"
                .into(),
        );
    }
    None
}

/// Why the id in `field` is refused, if it is: longer than [`MAX_ID_LEN`] bytes.
pub fn id_error(field: &str, id: &str) -> Option<String> {
    (id.len() > MAX_ID_LEN)
        .then(|| format!("{field} is {} bytes long; at most {MAX_ID_LEN} are accepted", id.len()))
}

/// The first of `ids` (field path, value) past [`MAX_ID_LEN`], as its reason.
pub fn first_id_error<'a>(ids: impl IntoIterator<Item = (String, &'a str)>) -> Option<String> {
    ids.into_iter().find_map(|(field, id)| id_error(&field, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattice_names() {
        assert_eq!(lattice_error("default"), None);
        assert_eq!(lattice_error(&"x".repeat(MAX_LATTICE_LEN)), None);
        assert!(lattice_error(&"x".repeat(MAX_LATTICE_LEN + 1)).unwrap().contains("at most 64"));
        assert!(lattice_error(&"+".repeat(82)).is_some());
        for bad in ["", "a.b", "a*", "a>", "a b", "a\tb", "a\u{7}"] {
            assert!(lattice_error(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(id_error("host_id", &"N".repeat(56)), None);
        let e = id_error("component_id", &"c".repeat(MAX_ID_LEN + 1)).unwrap();
        assert_eq!(e, "component_id is 257 bytes long; at most 256 are accepted");
    }
}
