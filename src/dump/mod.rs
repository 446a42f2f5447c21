//! Stage 2, from a snapshot to a file: decoding the captured chunks (`snapshot`, `reader`), the
//! output encoder (`chrome`; another format would be a folder beside it), why a dump was
//! written (`context`) and what came of it (`outcome`), atomic files and retention (`files`),
//! and the dump thread (`worker`). Imports `record` to read chunks, never the reverse.

pub(crate) mod callback;
pub(crate) mod chrome;
pub(crate) mod context;
pub(crate) mod files;
pub(crate) mod outcome;
pub(crate) mod reader;
pub(crate) mod snapshot;
pub(crate) mod worker;
