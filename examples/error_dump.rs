//! An error event leaves a dump (reason `error`) of what led up to it.
//!
//! ```text
//! cargo run --example error_dump
//! ```
//! Runs to completion: a few orders are processed, one fails with `error!`, and the recorder
//! writes the last seconds to `./blackbox-dumps/error_<time>_<n>.json`.

use std::process::ExitCode;
use std::time::Duration;

use tracing::{error, info, info_span, warn};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn process(order: u64) -> Result<(), String> {
    let _span = info_span!("process_order", order).entered();
    info!(order, "validating");
    std::thread::sleep(Duration::from_millis(5));
    if order == 4 {
        warn!(order, attempts = 3u64, "payment gateway slow");
        return Err(format!("payment declined for order {order}"));
    }
    info!(order, "shipped");
    Ok(())
}

fn main() -> ExitCode {
    let built = FlightRecorder::builder()
        .dump_on_error()
        .on_dump(|dump| match &dump.error {
            None => println!("📝 Trace saved to: {}", dump.path.display()),
            Some(err) => eprintln!("could not save the trace: {err}"),
        })
        .build();
    let (layer, recorder) = match built {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("cannot start the flight recorder: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry().with(layer).init();

    for order in 1..=6 {
        if let Err(err) = process(order) {
            // The dump is taken right after this event, with the failing order's span open.
            error!(order, %err, "order failed");
            println!("Order {order} failed: {err}");
        } else {
            println!("Order {order} done");
        }
    }
    recorder.flush();
    match recorder.last_dump_error() {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::FAILURE,
    }
}
