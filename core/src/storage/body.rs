//! Message bodies as clients write them: content derived from the message id and size, so a
//! checker can recompute what a client sent from the id alone instead of trusting a digest
//! some node kept.

use super::MessageId;

/// The body a client sends for message `id` of `size` bytes. Every id gives other bytes, so
/// a body swapped between two messages, truncated or shifted does not match.
pub fn generate(id: MessageId, size: u32) -> Vec<u8> {
    let mut out = vec![0u8; size as usize];
    let mut state = id.0 ^ 0x6D61_696C_626F_6479;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = state;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (x ^ (x >> 31)).to_le_bytes()
    };
    let mut chunks = out.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&next());
    }
    let tail = chunks.into_remainder();
    let last = next();
    tail.copy_from_slice(&last[..tail.len()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_their_size_and_differ_by_id() {
        for size in [0, 1, 7, 8, 9, 20_000] {
            assert_eq!(generate(MessageId(5), size).len(), size as usize);
        }
        assert_eq!(generate(MessageId(5), 64), generate(MessageId(5), 64));
        assert_ne!(generate(MessageId(5), 64), generate(MessageId(6), 64));
        // A shorter body is the longer one's prefix: only the size says it was cut.
        assert_eq!(
            generate(MessageId(5), 64)[..10],
            generate(MessageId(5), 10)[..]
        );
    }
}
