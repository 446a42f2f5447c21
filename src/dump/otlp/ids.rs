//! OTLP ids: trace ids (random, or parsed from a field) and span ids (the recorder's own).

/// 16 random bytes, never all zero (OTLP's invalid id); from the OS's generator, or, should
/// that fail, from the clock and a counter (unique, if guessable).
pub(crate) fn random_trace_id() -> [u8; 16] {
    let mut id = [0; 16];
    if getrandom::fill(&mut id).is_err() || id == [0; 16] {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        id[..8].copy_from_slice(&nanos.to_be_bytes());
        id[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    id
}

/// 8 random bytes, never all zero: for spans that are not the recorder's.
pub(crate) fn random_span_id() -> [u8; 8] {
    let id = random_trace_id();
    let mut span = [0; 8];
    span.copy_from_slice(&id[8..]);
    if span == [0; 8] {
        span[7] = 1;
    }
    span
}

/// The recorder's span id (unique in the process, never 0) as an OTLP span id.
pub(crate) fn span_id(id: u64) -> [u8; 8] {
    id.max(1).to_be_bytes()
}

/// A trace id written as 32 hex digits (W3C `traceparent`'s form; any case), not all zero.
pub(crate) fn trace_id_from_hex(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (id != [0; 16]).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_from_hex() {
        assert_eq!(
            trace_id_from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap()[..4],
            [0x4b, 0xf9, 0x2f, 0x35]
        );
        assert!(trace_id_from_hex("00000000000000000000000000000000").is_none());
        assert!(trace_id_from_hex("4bf92f3577b34da6a3ce929d0e0e473").is_none());
        assert!(trace_id_from_hex("4bf92f3577b34da6a3ce929d0e0e473g").is_none());
        assert!(trace_id_from_hex("+bf92f3577b34da6a3ce929d0e0e4736").is_none());
        assert!(trace_id_from_hex("4bf92f3577b34da6a3ce929d0e0e47€").is_none());
    }

    #[test]
    fn random_ids_differ_and_are_valid() {
        let (a, b) = (random_trace_id(), random_trace_id());
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        assert_ne!(random_span_id(), [0; 8]);
        assert_eq!(span_id(0x0102), [0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
