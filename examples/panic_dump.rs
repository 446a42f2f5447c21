//! A panic leaves a dump (reason `panic`) of what led up to it.
//!
//! ```text
//! cargo run --example panic_dump
//! ```
//! Exits by panicking: the recorder's panic hook writes `./blackbox-dumps/panic_<time>_<n>.json`
//! (and prints its path), then the usual panic message follows.

use std::time::Duration;

use tracing::{info, info_span};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn parse_config(line: &str) -> u64 {
    let _span = info_span!("parse_config", line).entered();
    info!("parsing");
    line.parse().expect("the config line is a number")
}

fn main() {
    let (layer, _recorder) = FlightRecorder::builder()
        .dump_on_panic()
        .build()
        .expect("a valid configuration");
    tracing_subscriber::registry().with(layer).init();

    for line in ["10", "20", "thirty"] {
        let value = parse_config(line);
        info!(value, "configured");
        std::thread::sleep(Duration::from_millis(5));
    }
}
