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
    if !is_one_token(name) {
        return Some(
            "a lattice name is one subject token (no '.', '*', '>', spaces or control characters)"
                .into(),
        );
    }
    None
}

/// The longest account token of an account-scoped lattice, in bytes (NATS account public keys
/// are 56 characters).
pub const MAX_ACCOUNT_LEN: usize = 64;

/// Why `account` cannot be the account token of a lattice of another account: at most
/// [`MAX_ACCOUNT_LEN`] letters, digits, `-` and `_` (it names the account's streams too), and not
/// a root wadm or the hosts use ([`crate::subject::ROOTS`]).
pub fn account_error(account: &str) -> Option<String> {
    if account.is_empty() {
        return Some("an account is empty".into());
    }
    if account.len() > MAX_ACCOUNT_LEN {
        return Some(format!(
            "an account is at most {MAX_ACCOUNT_LEN} bytes (this one has {})",
            account.len()
        ));
    }
    if !account.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Some("an account holds only letters, digits, '-' and '_'".into());
    }
    if crate::subject::ROOTS.contains(&account) {
        return Some(format!("{account:?} cannot be an account: wadm's subjects start with it"));
    }
    None
}

/// Why `name` cannot name a lattice of another account, `{account}.{lattice}` (see
/// [`crate::subject::split_account`]): both parts valid, and the whole, escaped for a storage key
/// (at most 3 bytes per byte), no longer than a plain lattice's can be.
pub fn scoped_lattice_error(name: &str) -> Option<String> {
    let (Some(account), lattice) = crate::subject::split_account(name) else {
        return Some(format!("{name:?} names no account: expected {{account}}.{{lattice}}"));
    };
    if let Some(reason) = account_error(account).or_else(|| lattice_error(lattice)) {
        return Some(reason);
    }
    let escaped: usize = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' { 1 } else { 3 })
        .sum();
    (escaped > 3 * MAX_LATTICE_LEN).then(|| {
        format!(
            "account and lattice together are too long ({} bytes once escaped for a key; at most {})",
            escaped,
            3 * MAX_LATTICE_LEN
        )
    })
}

fn is_one_token(name: &str) -> bool {
    !name.contains(['.', '*', '>']) && !name.chars().any(|c| c.is_whitespace() || c.is_control())
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
    fn scoped_lattice_names() {
        let account = format!("A{}", "X".repeat(55));
        assert_eq!(scoped_lattice_error(&format!("{account}.default")), None);
        assert_eq!(scoped_lattice_error(&format!("{account}.{}", "x".repeat(64))), None);
        assert!(scoped_lattice_error("default").unwrap().contains("names no account"));
        assert!(scoped_lattice_error(".default").unwrap().contains("account is empty"));
        assert!(scoped_lattice_error("ACC.").unwrap().contains("lattice name is empty"));
        assert!(scoped_lattice_error("ACC.a.b").unwrap().contains("one subject token"));
        assert!(scoped_lattice_error("wadm.default").unwrap().contains("cannot be an account"));
        assert!(scoped_lattice_error("A*.default").unwrap().contains("only letters"));
        let long = scoped_lattice_error(&format!("{account}.{}", "+".repeat(60))).unwrap();
        assert!(long.contains("too long"), "{long}");
        assert!(account_error(&"A".repeat(65)).unwrap().contains("at most 64"));
    }

    #[test]
    fn ids() {
        assert_eq!(id_error("host_id", &"N".repeat(56)), None);
        let e = id_error("component_id", &"c".repeat(MAX_ID_LEN + 1)).unwrap();
        assert_eq!(e, "component_id is 257 bytes long; at most 256 are accepted");
    }
}
