//! Any bytes through the dump reader (plain or gzip) and the format checker: an error is
//! fine, a panic, hang or crash is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut events = 0u64;
    let _ = tracing_blackbox::analyze::decode(std::io::Cursor::new(data.to_vec())).map(|(reader, _)| {
        let _ = tracing_blackbox::analyze::read_from(reader, |event| {
            events += 1;
            let _ = event.arg_str("level");
        });
    });
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tracing_blackbox::validate::check_str(text);
    }
});
