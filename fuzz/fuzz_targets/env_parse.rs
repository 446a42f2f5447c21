//! Arbitrary values for the `BLACKBOX_*` variables: `build()` returns a recorder or an error
//! naming the variable; a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\0').collect();
    let lookup = |name: &str| {
        let index = tracing_blackbox::ENV_VARS.iter().position(|v| *v == name)?;
        values.get(index).map(|v| (*v).to_owned())
    };
    match tracing_blackbox::FlightRecorder::builder()
        .with_env_from(lookup)
        .recording(false)
        .build()
    {
        Ok((layer, recorder)) => drop((layer, recorder)),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
});
