//! The key under which an idempotency key is remembered for the dedupe window.

/// A 64-bit FNV-1a hash of (source, key): stable across processes and ferry versions (unlike
/// `std`'s hasher), so a restart still recognizes keys stored before it. At 64 bits a collision
/// (one event wrongly dropped as a duplicate) needs billions of keys within one window.
pub(crate) fn dedupe_key(source: &str, key: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    let len = source.len() as u64;
    for byte in len
        .to_le_bytes()
        .iter()
        .chain(source.as_bytes())
        .chain(key.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash.cast_signed()
}

#[cfg(test)]
mod tests {
    use super::dedupe_key;

    #[test]
    fn source_and_key_are_kept_apart() {
        assert_ne!(dedupe_key("ab", "c"), dedupe_key("a", "bc"));
        assert_ne!(dedupe_key("segment", "m1"), dedupe_key("amplitude", "m1"));
        assert_eq!(dedupe_key("segment", "m1"), dedupe_key("segment", "m1"));
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // A changed value would make a restarted server forget every stored key.
        assert_eq!(
            dedupe_key("segment", "m1"),
            0xc72d_730c_d96c_e471_u64.cast_signed()
        );
    }
}
