//! One token of a JetStream KV key.
//!
//! KV keys allow `[-/_=.a-zA-Z0-9]`, with `.` separating tokens; lattice names, host ids and
//! component ids may hold anything. Every store of wadm encodes each token the same way:
//! `[A-Za-z0-9_-]` stay, every other byte becomes `=XX` (upper-case hex), and the empty token is
//! `=`. The encoding is injective, so keys of different entities never collide.

/// Encode one key token.
pub fn encode_token(raw: &str) -> String {
    if raw.is_empty() {
        return "=".to_string();
    }
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

/// Decode one key token; `None` when it is not a valid encoding.
pub fn decode_token(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for raw in ["", "default", "a.b", "N-x_1", "ü/=>*", "=41"] {
            let token = encode_token(raw);
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)));
            assert_eq!(decode_token(&token).as_deref(), Some(raw), "{raw:?}");
        }
        assert_eq!(encode_token("a.b"), "a=2Eb");
        assert_ne!(encode_token("=41"), encode_token("A"));
    }
}
