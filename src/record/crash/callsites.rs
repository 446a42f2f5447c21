//! The callsite log's entries: a callsite's metadata written once, so records that keep only
//! the callsite's address can be named after the process is gone.

use tracing_core::Metadata;

use super::format::callsite::LEVELS;

/// A callsite as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallsiteEntry {
    pub(crate) address: u64,
    pub(crate) is_span: bool,
    pub(crate) level: tracing_core::Level,
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
    pub(crate) module_path: Option<String>,
    pub(crate) fields: Vec<String>,
}

/// Longest string kept per name, target, path or field name.
const MAX_STRING: usize = 1024;

/// The log entry for `metadata` at `address`.
pub(crate) fn encode(address: u64, metadata: &Metadata<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&address.to_le_bytes());
    out.push(u8::from(metadata.is_span()));
    let level = LEVELS
        .iter()
        .position(|level| level == metadata.level())
        .unwrap_or(0);
    out.push(level as u8);
    out.extend_from_slice(&metadata.line().unwrap_or(0).to_le_bytes());
    for text in [
        metadata.name(),
        metadata.target(),
        metadata.file().unwrap_or(""),
        metadata.module_path().unwrap_or(""),
    ] {
        put_str(&mut out, text);
    }
    let fields = metadata.fields();
    let count = fields.len().min(usize::from(u8::MAX) + 1);
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for field in fields.iter().take(count) {
        put_str(&mut out, field.name());
    }
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_STRING);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Reads the log's committed bytes back; stops at the first entry that does not parse (and
/// says so with `false`).
pub(crate) fn decode(mut bytes: &[u8]) -> (Vec<CallsiteEntry>, bool) {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let Some(len) = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            return (entries, false);
        };
        let Some(entry) = bytes.get(..len).and_then(|entry| parse(entry.get(4..)?)) else {
            return (entries, false);
        };
        entries.push(entry);
        bytes = &bytes[len..];
    }
    (entries, true)
}

fn parse(bytes: &[u8]) -> Option<CallsiteEntry> {
    let mut cursor = Cursor(bytes);
    let address = u64::from_le_bytes(cursor.take(8)?.try_into().ok()?);
    let is_span = cursor.take(1)?[0] != 0;
    let level = *LEVELS.get(usize::from(cursor.take(1)?[0]))?;
    let line = u32::from_le_bytes(cursor.take(4)?.try_into().ok()?);
    let name = cursor.string()?;
    let target = cursor.string()?;
    let file = cursor.string()?;
    let module_path = cursor.string()?;
    let count = u16::from_le_bytes(cursor.take(2)?.try_into().ok()?);
    let fields = (0..count)
        .map(|_| cursor.string())
        .collect::<Option<Vec<_>>>()?;
    Some(CallsiteEntry {
        address,
        is_span,
        level,
        name,
        target,
        file: (!file.is_empty()).then_some(file),
        line: (line != 0).then_some(line),
        module_path: (!module_path.is_empty()).then_some(module_path),
        fields,
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        Some(String::from_utf8_lossy(self.take(usize::from(len))?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written() {
        let span = tracing::info_span!("checkout", user = 1, cart = "x");
        let metadata = span
            .metadata()
            .expect("enabled without a subscriber? use callsite");
        let mut log = encode(42, metadata);
        log.extend(encode(43, metadata));
        let (entries, complete) = decode(&log);
        assert!(complete);
        assert_eq!(entries.len(), 2);
        let entry = &entries[1];
        assert_eq!(entry.address, 43);
        assert!(entry.is_span);
        assert_eq!(entry.name, "checkout");
        assert_eq!(entry.level, tracing_core::Level::INFO);
        assert_eq!(entry.fields, ["user", "cart"]);
        assert_eq!(entry.line, metadata.line());
        // A log cut anywhere inside its second entry still gives the first.
        for cut in log.len() / 2 + 1..log.len() {
            let (entries, complete) = decode(&log[..cut]);
            assert_eq!(entries.len(), 1);
            assert!(!complete);
        }
    }
}
