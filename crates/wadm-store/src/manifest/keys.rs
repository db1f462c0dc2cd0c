//! The key layout of the manifest bucket (lattices escaped by [`encode_token`]; application
//! names are letters, digits, `-` and `_`, used as they are):
//!
//! - `{lattice}.{app}.index`: the [`super::AppIndex`]; every write to an application is a
//!   compare-and-set on this key.
//! - `{lattice}.{app}.v.{id}`: one stored version (a unique id per put; the index maps version
//!   names to ids).
//! - `{lattice}.{app}.h.{seq}`: one history entry (`seq` zero-padded so keys sort in order).

use crate::kv_key::encode_token;

/// Whether `name` is a valid application name (see [`wadm_model::names::app_name_error`]).
pub fn is_valid_app_name(name: &str) -> bool {
    wadm_model::names::app_name_error(name).is_none()
}

/// The key of an application's index.
pub fn index_key(lattice: &str, app: &str) -> String {
    format!("{}.{app}.index", encode_token(lattice))
}

/// The pattern matching every index key of a lattice.
pub fn index_pattern(lattice: &str) -> String {
    format!("{}.*.index", encode_token(lattice))
}

/// The key of one stored version.
pub fn version_key(lattice: &str, app: &str, id: &str) -> String {
    format!("{}.{app}.v.{id}", encode_token(lattice))
}

/// The key of one history entry.
pub fn history_key(lattice: &str, app: &str, seq: u64) -> String {
    format!("{}.{app}.h.{seq:016}", encode_token(lattice))
}

/// The pattern matching every history key of an application.
pub fn history_pattern(lattice: &str, app: &str) -> String {
    format!("{}.{app}.h.*", encode_token(lattice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        assert_eq!(index_key("default", "my-app"), "default.my-app.index");
        assert_eq!(history_key("l", "a", 7), "l.a.h.0000000000000007");
        assert_eq!(encode_token("a b/c"), "a=20b=2Fc");
        assert!(is_valid_app_name("a_b-9") && !is_valid_app_name("a.b") && !is_valid_app_name(""));
    }

    proptest! {
        #[test]
        fn escaping_is_injective_and_key_safe(a in ".{0,12}", b in ".{0,12}") {
            let (ea, eb) = (encode_token(&a), encode_token(&b));
            prop_assert!(ea.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'='));
            prop_assert_eq!(a == b, ea == eb);
        }
    }
}
