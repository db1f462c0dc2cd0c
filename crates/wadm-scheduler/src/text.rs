//! Strings built once per scaler or command on every reconcile, written directly instead of
//! through `format!` (whose machinery costs several times the text it writes).

use std::sync::Arc;

/// The decimal digits of `n`, written at the end of `buf`.
fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

/// `{running}/{wanted} instances running`: the message of a workload scaler's status, composed
/// on the stack and allocated once, at its size (shared by the scalers that say the same: see
/// [`crate::context::Context::instances_running`]).
pub(crate) fn instances_running(running: u64, wanted: u64) -> Arc<str> {
    const TAIL: &[u8] = b" instances running";
    let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
    let (running, wanted) = (decimal(&mut a, running), decimal(&mut b, wanted));
    let mut out = [0u8; 20 + 1 + 20 + TAIL.len()];
    let mut len = 0;
    for part in [running, b"/", wanted, TAIL] {
        out[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    // Only ASCII digits and text were written.
    Arc::from(std::str::from_utf8(&out[..len]).unwrap_or_default())
}

/// Write the 32 lowercase hex digits of `n` into `out`, sixteen at a time in one integer (no
/// table lookups, no loop).
pub(crate) fn hex128_into(n: u128, out: &mut [u8; 32]) {
    out[..16].copy_from_slice(&hex64((n >> 64) as u64));
    out[16..].copy_from_slice(&hex64(n as u64));
}

/// The 16 lowercase hex digits of `n`, most significant first.
fn hex64(n: u64) -> [u8; 16] {
    const fn bytes(b: u8) -> u128 {
        u128::from_ne_bytes([b; 16])
    }
    // Spread the nibbles, one per byte, the most significant in the highest byte.
    let mut v = u128::from(n);
    v = (v | (v << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & bytes(0x0f);
    // A byte of 10 or more overflows into bit 4 once 6 is added: it becomes a letter.
    let letters = ((v + bytes(6)) >> 4) & bytes(1);
    (v + bytes(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_hex_read_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(&mut [0; 20], n), n.to_string().as_bytes());
            assert_eq!(&*instances_running(n, 7), format!("{n}/7 instances running"));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834_u128;
        let many = std::iter::repeat_with(|| {
            x = x.wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645).wrapping_add(1);
            x
        });
        let cases = [0, 0xab, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210];
        for n in cases.into_iter().chain(many.take(1000)) {
            let mut out = [0u8; 32];
            hex128_into(n, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{n:032x}"));
        }
    }
}
