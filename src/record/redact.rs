//! Redaction at record time: values of fields with secret-looking names never enter the ring.

/// Field names redacted by default (compared without regard to ASCII case).
pub const DEFAULT_REDACTED_FIELDS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
];

/// What a redacted value is recorded as.
pub const REDACTED: &str = "[REDACTED]";

/// The names to redact, with a 128-bit filter over (length, first and last byte, ASCII case
/// folded), so that nearly every field is ruled out by one mask test before any string
/// comparison.
#[derive(Debug, Clone)]
pub(crate) struct Redaction {
    names: Vec<String>,
    case_sensitive: bool,
    /// Bits of [`filter_bit`] for every name.
    filter: u128,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction::new(
            DEFAULT_REDACTED_FIELDS.iter().map(|s| (*s).to_owned()),
            false,
        )
    }
}

/// A name's bit in the filter: from its length and its first and last bytes, case folded.
#[inline]
fn filter_bit(name: &str) -> u128 {
    let bytes = name.as_bytes();
    let (first, last) = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => (first.to_ascii_lowercase(), last.to_ascii_lowercase()),
        _ => (0, 0),
    };
    let mix = (bytes.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(first).wrapping_mul(7))
        .wrapping_add(u32::from(last));
    1u128 << (mix % 128)
}

impl Redaction {
    pub(crate) fn new(names: impl IntoIterator<Item = String>, case_sensitive: bool) -> Self {
        let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
        let filter = names.iter().fold(0, |mask, n| mask | filter_bit(n));
        Redaction {
            names,
            case_sensitive,
            filter,
        }
    }

    pub(crate) fn case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    pub(crate) fn set_case_sensitive(&mut self, on: bool) {
        self.case_sensitive = on;
    }

    pub(crate) fn add(&mut self, name: String) {
        if !name.is_empty() && !self.names.contains(&name) {
            self.filter |= filter_bit(&name);
            self.names.push(name);
        }
    }

    /// Whether a field with this name is redacted.
    #[inline]
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.filter & filter_bit(name) == 0 {
            return false;
        }
        self.matches_slow(name)
    }

    #[cold]
    fn matches_slow(&self, name: &str) -> bool {
        self.names.iter().any(|candidate| {
            if self.case_sensitive {
                candidate == name
            } else {
                candidate.eq_ignore_ascii_case(name)
            }
        })
    }
}

/// A thread's memory of which callsites name a redacted field, so that a record from any other
/// callsite (nearly all of them) skips the per-field check: one direct-mapped entry per
/// callsite address, filled on first sight. The redaction list is fixed when the recorder is
/// built, so an entry never goes stale.
pub(crate) struct CallsiteRedaction {
    entries: Box<[(usize, bool); CallsiteRedaction::ENTRIES]>,
}

impl CallsiteRedaction {
    const ENTRIES: usize = 64;

    pub(crate) fn new() -> Self {
        CallsiteRedaction {
            entries: Box::new([(0, false); Self::ENTRIES]),
        }
    }

    /// `redaction`, if a field of `metadata` may be redacted; `None` if none of its fields is.
    #[inline]
    pub(crate) fn for_callsite<'a>(
        &mut self,
        metadata: &'static tracing_core::Metadata<'static>,
        redaction: &'a Redaction,
    ) -> Option<&'a Redaction> {
        let address = metadata as *const tracing_core::Metadata<'static> as usize;
        // Fibonacci hashing: the top bits of the product spread nearby statics apart.
        let index = ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize;
        let entry = &mut self.entries[index % Self::ENTRIES];
        if entry.0 != address {
            let any = metadata
                .fields()
                .iter()
                .any(|field| redaction.matches(field.name()));
            *entry = (address, any);
        }
        entry.1.then_some(redaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_without_regard_to_case_and_nothing_else() {
        let redaction = Redaction::default();
        for name in [
            "password",
            "PASSWORD",
            "Api_Key",
            "set-cookie",
            "Authorization",
            "session",
        ] {
            assert!(redaction.matches(name), "{name}");
        }
        for name in [
            "pass",
            "passwords",
            "user",
            "message",
            "session_id",
            "tokens",
            "",
        ] {
            assert!(!redaction.matches(name), "{name}");
        }
    }

    #[test]
    fn common_field_names_are_ruled_out_by_the_filter_alone() {
        let redaction = Redaction::default();
        for name in [
            "message", "id", "user", "path", "a", "b", "error", "status", "method", "duration",
        ] {
            assert_eq!(
                redaction.filter & filter_bit(name),
                0,
                "{name} reaches the slow path"
            );
        }
    }

    #[test]
    fn case_sensitive_and_custom_lists() {
        let mut redaction = Redaction::new(["ssn".to_owned()], true);
        assert!(
            redaction.matches("ssn") && !redaction.matches("SSN") && !redaction.matches("password")
        );
        redaction.add("x".repeat(80));
        assert!(redaction.matches(&"x".repeat(80)) && !redaction.matches(&"y".repeat(80)));
        assert!(!Redaction::new(Vec::new(), false).matches("password"));
    }
}
