//! Stable hashing: FNV-1a over bytes, fixed for all time, so ids and tie-breaks never depend on a
//! process-random seed (unlike `std`'s `DefaultHasher`).

const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV64_OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV64_PRIME))
}

/// An incremental 128-bit FNV-1a hasher. Fields are length-prefixed so that `("ab","c")` and
/// `("a","bc")` hash differently.
#[derive(Debug, Clone, Copy)]
pub struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Self(FNV128_OFFSET)
    }
}

impl Fnv128 {
    /// Feed raw bytes.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 = (self.0 ^ u128::from(*b)).wrapping_mul(FNV128_PRIME);
        }
        self
    }

    /// Feed one length-prefixed field.
    pub fn field(self, bytes: &[u8]) -> Self {
        self.bytes(&(bytes.len() as u64).to_le_bytes()).bytes(bytes)
    }

    /// The digest as 32 lowercase hex digits.
    pub fn hex(self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits =
            (0..32).rev().map(|i| char::from(DIGITS[((self.0 >> (4 * i)) & 0xf) as usize]));
        let mut out = String::with_capacity(32);
        out.extend(digits);
        out
    }
}

/// A [`std::hash::Hasher`] running FNV-1a: cheap for the short string keys of lookup-only
/// indexes (never iterated, so no order leaks), and free of a process-random seed.
#[derive(Debug, Clone, Copy)]
pub struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        Self(FNV64_OFFSET)
    }
}

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(FNV64_PRIME);
        }
    }
}

/// Builds [`FnvHasher`]s, for `HashMap<K, V, FnvBuild>`.
pub type FnvBuild = std::hash::BuildHasherDefault<FnvHasher>;

/// A lookup-only hash map keyed with [`FnvHasher`].
pub type FnvMap<K, V> = std::collections::HashMap<K, V, FnvBuild>;

/// A lookup-only hash set keyed with [`FnvHasher`].
pub type FnvSet<K> = std::collections::HashSet<K, FnvBuild>;

/// A strong 64-bit mix (SplitMix64 finaliser): spreads a stable hash over all 64 bits (placement
/// derives each resource's start among equally loaded hosts from it).
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Published FNV-1a test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv128::default().bytes(b"").hex(), format!("{FNV128_OFFSET:032x}"));
        assert_eq!(Fnv128::default().bytes(b"a").hex(), "d228cb696f1a8caf78912b704e4a8964");
        assert_eq!(Fnv128(0xab).hex(), format!("{:032x}", 0xab));
    }

    #[test]
    fn fields_are_delimited() {
        let a = Fnv128::default().field(b"ab").field(b"c").hex();
        let b = Fnv128::default().field(b"a").field(b"bc").hex();
        assert_ne!(a, b);
    }
}
