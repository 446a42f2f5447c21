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

/// The names to redact, with a bit per name length so that most fields are ruled out by one
/// mask test, before any string comparison.
#[derive(Debug, Clone)]
pub(crate) struct Redaction {
    names: Vec<String>,
    case_sensitive: bool,
    /// Bit `n` set: some name is `n` bytes long (bit 63: some name is 63 bytes or longer).
    lengths: u64,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction::new(
            DEFAULT_REDACTED_FIELDS.iter().map(|s| (*s).to_owned()),
            false,
        )
    }
}

fn length_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

impl Redaction {
    pub(crate) fn new(names: impl IntoIterator<Item = String>, case_sensitive: bool) -> Self {
        let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
        let lengths = names.iter().fold(0, |mask, n| mask | length_bit(n.len()));
        Redaction {
            names,
            case_sensitive,
            lengths,
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
            self.lengths |= length_bit(name.len());
            self.names.push(name);
        }
    }

    /// Whether a field with this name is redacted.
    #[inline]
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.lengths & length_bit(name.len()) == 0 {
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
