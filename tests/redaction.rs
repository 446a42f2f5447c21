//! Secrets never enter the buffer: fields with secret-looking names are recorded as
//! `[REDACTED]`, in events, span fields and `record()` updates, whatever the value's form.

mod common;

use std::fmt;

use tracing::{info, info_span};
use tracing_blackbox::{FieldValue, FlightRecorder, REDACTED, RecordKind};

const SECRET: &str = "hunter2-very-secret";

struct Shown;

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET)
    }
}

fn dump_text(recorder: &FlightRecorder) -> String {
    let mut bytes = Vec::new();
    recorder.write_to(&mut bytes).unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn default_names_are_redacted_in_every_form_and_place() {
    let (dispatch, recorder) = common::recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        info!(password = SECRET, user = "ada", "login");
        info!(token = ?SECRET, "debug form");
        info!(api_key = %Shown, "display form");
        info!(Authorization = SECRET, "header, any case");
        info!(session = 42u64, "a number is redacted too");
        let span = info_span!(
            "request",
            cookie = SECRET,
            secret = tracing::field::Empty,
            path = "/login"
        );
        span.record("secret", SECRET);
        span.in_scope(|| info!("inside"));
    });
    let text = dump_text(&recorder);
    assert!(!text.contains(SECRET), "the secret is nowhere in the dump");
    assert!(!text.contains("hunter2"));
    let dump = common::dump(&recorder);
    let events: Vec<_> = dump.phase("i").collect();
    assert_eq!(events[0]["args"]["fields"]["password"], REDACTED);
    assert_eq!(
        events[0]["args"]["fields"]["user"], "ada",
        "other fields are kept"
    );
    assert_eq!(events[1]["args"]["fields"]["token"], REDACTED);
    assert_eq!(events[2]["args"]["fields"]["api_key"], REDACTED);
    assert_eq!(events[3]["args"]["fields"]["Authorization"], REDACTED);
    assert_eq!(events[4]["args"]["fields"]["session"], REDACTED);
    let request = dump.slices_named("request");
    assert_eq!(request[0]["args"]["fields"]["cookie"], REDACTED);
    assert_eq!(
        request[0]["args"]["fields"]["secret"], REDACTED,
        "record() updates too"
    );
    assert_eq!(request[0]["args"]["fields"]["path"], "/login");
    // In the decoded records as well: never the value.
    for record in recorder.snapshot().records {
        let fields = match &record.kind {
            RecordKind::Event { fields, .. }
            | RecordKind::NewSpan { fields, .. }
            | RecordKind::Record { fields, .. } => fields.clone(),
            _ => continue,
        };
        for field in fields {
            assert_ne!(field.value, FieldValue::Str(SECRET.to_owned()));
        }
    }
}

#[test]
fn the_list_is_configurable_and_can_be_emptied() {
    let (layer, recorder) = FlightRecorder::builder()
        .redact_fields(["ssn"])
        .redact_field("card_number")
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info!(
            ssn = "123-45-6789",
            card_number = 4111u64,
            password = "shown now",
            "custom"
        );
    });
    let dump = common::dump(&recorder);
    let fields = &dump.phase("i").next().unwrap()["args"]["fields"];
    assert_eq!(fields["ssn"], REDACTED);
    assert_eq!(fields["card_number"], REDACTED);
    assert_eq!(
        fields["password"], "shown now",
        "replaced list: password is no longer in it"
    );

    let (layer, recorder) = FlightRecorder::builder()
        .redact_fields(Vec::<String>::new())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info!(password = "visible", "off")
    });
    assert!(dump_text(&recorder).contains("visible"));

    let (layer, recorder) = FlightRecorder::builder()
        .redact_case_sensitive(true)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info!(Password = "case matters", password = "hidden", "exact");
    });
    let dump = common::dump(&recorder);
    let fields = &dump.phase("i").next().unwrap()["args"]["fields"];
    assert_eq!(fields["Password"], "case matters");
    assert_eq!(fields["password"], REDACTED);
}

/// Sixteen copies of the tokens: each copy of a `tracing` macro is a callsite of its own.
macro_rules! sixteen {
    ($($body:tt)*) => {
        $($body)* $($body)* $($body)* $($body)* $($body)* $($body)* $($body)* $($body)*
        $($body)* $($body)* $($body)* $($body)* $($body)* $($body)* $($body)* $($body)*
    };
}

#[test]
fn hundreds_of_callsites_on_one_thread_each_redact_their_own() {
    // The layer remembers, per thread and callsite, whether a callsite has a field to redact
    // (in a small table where callsites collide): 512 callsites, half with a secret, seen
    // twice, must each be redacted exactly where their own fields say.
    let (dispatch, recorder) = common::recorder_with(4 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for pass in 0..2u64 {
            sixteen! { sixteen! {
                info!(pass, password = SECRET, "secret");
                info!(pass, user = SECRET, "plain");
            } }
        }
    });
    assert_eq!(
        dump_text(&recorder).matches(SECRET).count(),
        512,
        "plain ones only"
    );
    let dump = common::dump(&recorder);
    let (mut secrets, mut plain) = (0, 0);
    for event in dump.phase("i") {
        let fields = &event["args"]["fields"];
        match event["name"].as_str().unwrap() {
            "secret" => {
                assert_eq!(fields["password"], REDACTED, "{event}");
                secrets += 1;
            }
            "plain" => {
                assert_eq!(fields["user"], SECRET, "{event}");
                plain += 1;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!((secrets, plain), (512, 512));
}
