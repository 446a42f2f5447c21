//! Stage 2, from a snapshot to a file or a receiver: decoding the captured chunks (`snapshot`,
//! `reader`), the output encoders (`chrome`; `otlp`, with its exporter thread, beside it), why
//! a dump was written (`context`) and what came of it (`outcome`), atomic files and retention
//! (`files`), the settings (`settings`), and the dump thread (`worker`, with `export` handing
//! windows to OTLP). Imports `record` to read chunks, never the reverse.

pub(crate) mod callback;
pub(crate) mod chrome;
pub(crate) mod context;
#[cfg(feature = "otlp")]
pub(crate) mod export;
pub(crate) mod files;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod outcome;
pub(crate) mod reader;
pub(crate) mod settings;
pub(crate) mod snapshot;
pub(crate) mod worker;
