//! Strings built once per scaler or command on every reconcile, written directly instead of
//! through `format!` (whose machinery costs several times the text it writes).

/// Append the decimal digits of `n`.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// `{running}/{wanted} instances running`: the message of a workload scaler's status.
pub(crate) fn instances_running(running: u64, wanted: u64) -> String {
    let mut out = String::with_capacity(48);
    push_decimal(&mut out, running);
    out.push('/');
    push_decimal(&mut out, wanted);
    out.push_str(" instances running");
    out
}

/// Write the 32 lowercase hex digits of `n` into `out`.
pub(crate) fn hex128_into(n: u128, out: &mut [u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_hex_read_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
            assert_eq!(instances_running(n, 7), format!("{n}/7 instances running"));
        }
        for n in [0, 0xab, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let mut out = [0u8; 32];
            hex128_into(n, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{n:032x}"));
        }
    }
}
