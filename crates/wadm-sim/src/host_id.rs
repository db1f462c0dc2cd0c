//! Host ids: nkeys server public keys (`N…`, 56 characters) made from random bytes.
//!
//! A real host's id is the public half of a fresh ed25519 key pair. Nothing checks that a
//! simulated host could sign, so the simulator encodes 32 random bytes in the same format
//! (prefix byte, key, CRC-16 checksum, base32 without padding) instead of deriving a public key,
//! retrying until the bytes are a valid curve point (so `nkeys::KeyPair::from_public_key`
//! accepts the id): a point check is far cheaper than key generation in unoptimised builds.

/// The nkeys prefix byte of a server public key (encodes to a leading `N`).
const SERVER_PREFIX: u8 = 13 << 3;

/// A fresh random host id.
pub fn new_host_id() -> String {
    loop {
        let id = encode_server_key(&rand::random::<[u8; 32]>());
        if nkeys::KeyPair::from_public_key(&id).is_ok() {
            return id;
        }
    }
}

/// Encode 32 key bytes as an nkeys server public key.
pub fn encode_server_key(key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(SERVER_PREFIX);
    raw.extend_from_slice(key);
    let crc = crc16_xmodem(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32_nopad(&raw)
}

/// CRC-16 with polynomial 0x1021 and initial value 0 (the nkeys checksum).
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// RFC 4648 base32, upper case, without padding.
fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in data {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_decode_as_server_public_keys() {
        for _ in 0..50 {
            let id = new_host_id();
            assert_eq!(id.len(), 56);
            assert!(id.starts_with('N'));
            let (prefix, _) = nkeys::from_public_key(&id).expect("valid nkey");
            assert_eq!(prefix, SERVER_PREFIX);
            let kp = nkeys::KeyPair::from_public_key(&id).expect("a server key");
            assert_eq!(kp.key_pair_type(), nkeys::KeyPairType::Server);
        }
    }

    #[test]
    fn encoding_matches_nkeys_for_a_real_key() {
        let real = nkeys::KeyPair::new_server().public_key();
        let (_, key) = nkeys::from_public_key(&real).unwrap();
        assert_eq!(encode_server_key(&key), real);
    }
}
