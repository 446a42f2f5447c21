//! Helpers shared by the integration tests: dump a recorder, parse it, check invariants.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tracing_blackbox::{FlightRecorder, FlightRecorderLayer};
use tracing_subscriber::layer::SubscriberExt;

/// A recorder with a small buffer and its subscriber (Registry + the layer).
pub fn recorder_with(max_bytes: usize) -> (tracing::Dispatch, FlightRecorder) {
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(max_bytes)
        .build()
        .expect("valid configuration");
    (dispatch(layer), recorder)
}

pub fn dispatch(layer: FlightRecorderLayer) -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// A parsed dump.
pub struct Dump {
    pub json: Value,
}

impl Dump {
    pub fn events(&self) -> &Vec<Value> {
        self.json["traceEvents"].as_array().expect("traceEvents")
    }

    pub fn other(&self, key: &str) -> &Value {
        &self.json["otherData"][key]
    }

    pub fn phase<'a>(&'a self, ph: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events().iter().filter(move |e| e["ph"] == ph)
    }

    pub fn slices_named<'a>(&'a self, name: &'a str) -> Vec<&'a Value> {
        self.phase("X").filter(|e| e["name"] == name).collect()
    }

    pub fn counter(&self, key: &str) -> u64 {
        self.other(key)
            .as_u64()
            .unwrap_or_else(|| panic!("otherData.{key} missing"))
    }
}

/// Writes a dump to memory, parses it and checks every invariant a dump must hold.
pub fn dump(recorder: &FlightRecorder) -> Dump {
    let mut bytes = Vec::new();
    let written = recorder.write_to(&mut bytes).expect("write_to");
    assert_eq!(
        written,
        bytes.len() as u64,
        "write_to reports the bytes written"
    );
    let json: Value = serde_json::from_slice(&bytes).expect("dump is valid JSON");
    let dump = Dump { json };
    check_invariants(&dump);
    // Written in this process: the real pid.
    assert_eq!(
        dump.events()[0]["pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );
    dump
}

fn nanos(v: &Value) -> i64 {
    (v.as_f64().expect("numeric timestamp") * 1000.0).round() as i64
}

/// The format checker plus the properties our dumps promise beyond it.
pub fn check_invariants(dump: &Dump) {
    let summary = tracing_blackbox::validate::check(&dump.json)
        .unwrap_or_else(|v| panic!("dump violates the format: {v}"));
    assert!(
        summary.sorted_per_thread,
        "timestamps non-decreasing per thread"
    );

    // One process, one pid.
    let pid = dump.events()[0]["pid"].as_u64().expect("pid");
    assert!(dump.events().iter().all(|e| e["pid"].as_u64() == Some(pid)));
    // Unique span ids: one b per span, and X slices only of known spans.
    let mut begun = HashSet::new();
    let (waits, spans): (Vec<&Value>, Vec<&Value>) = dump
        .phase("b")
        .partition(|b| b["cat"] == "tokio::task::ready");
    for b in spans {
        let id = b["args"]["span_id"].as_u64().expect("b has span_id");
        assert!(begun.insert(id), "span id {id} begun twice");
        assert_eq!(b["id"], format!("0x{id:x}"), "async id is the span's own");
    }
    // Every slice is a span's, except the runtime view's busy and parked slices.
    for x in dump.phase("X").filter(|x| x["cat"] != "tokio::runtime") {
        let id = x["args"]["span_id"].as_u64().expect("X has span_id");
        assert!(begun.contains(&id), "X of span {id} has no lifetime pair");
    }
    for x in dump.phase("X").filter(|x| x["cat"] == "tokio::runtime") {
        assert!(x["name"] == "busy" || x["name"] == "parked", "{x}");
        assert!(x["args"].get("span_id").is_none());
    }
    // A tokio task still waiting to be polled at the end: a wait of a task with a lifetime.
    for wait in waits {
        let task = wait["args"]["task_span_id"].as_u64().expect("task_span_id");
        assert!(begun.contains(&task), "wait of unknown task {task}");
        assert_eq!(wait["args"]["incomplete"], true);
    }
    // An event lies inside its span's slice on its thread when that span is open there.
    let mut slices: HashMap<(u64, u64), Vec<(i64, i64)>> = HashMap::new();
    for x in dump.phase("X").filter(|x| x["cat"] != "tokio::runtime") {
        let key = (
            x["tid"].as_u64().unwrap(),
            x["args"]["span_id"].as_u64().unwrap(),
        );
        let ts = nanos(&x["ts"]);
        slices
            .entry(key)
            .or_default()
            .push((ts, ts + nanos(&x["dur"])));
    }
    for i in dump.phase("i") {
        let Some(span) = i["args"]["span_id"].as_u64() else {
            continue;
        };
        if i["args"]["explicit_parent"] == true {
            continue;
        }
        let key = (i["tid"].as_u64().unwrap(), span);
        if let Some(list) = slices.get(&key) {
            let ts = nanos(&i["ts"]);
            assert!(
                list.iter().any(|&(start, end)| start <= ts && ts <= end),
                "event {i} lies outside its span's slices on its thread"
            );
        }
    }
    // Counters add up.
    let written = dump.counter("written");
    let retained = dump.counter("retained");
    let overwritten = dump.counter("overwritten");
    assert_eq!(
        written,
        retained + overwritten,
        "written = retained + overwritten"
    );
    for key in ["dropped", "max_bytes", "version"] {
        assert!(dump.other(key).is_u64(), "otherData.{key}");
    }
    for key in ["reason", "anchor", "window_start", "window_end"] {
        assert!(dump.other(key).is_string(), "otherData.{key}");
    }
}

/// An example's binary: `cargo test` builds the examples next to the test binaries' `deps`
/// folder.
pub fn example(name: &str) -> Option<std::path::PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_owned();
    let path = deps.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

/// The files in `dir`, sorted; none if it does not exist.
pub fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
}

/// Reads a dump file, parses it and checks its invariants.
pub fn load(path: &std::path::Path) -> Dump {
    let dump = Dump {
        json: serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap(),
    };
    check_invariants(&dump);
    dump
}

/// GETs a dump over HTTP, parses it and checks its invariants.
pub fn fetch_dump(url: &str) -> Dump {
    let mut response = ureq::get(url).call().unwrap();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let dump = Dump {
        json: serde_json::from_slice(&bytes).unwrap(),
    };
    check_invariants(&dump);
    dump
}

/// For tests that measure the whole process (VmRSS): in the parent, re-runs `test` alone in a
/// child process, asserts it passed and returns false; in that child, returns true.
pub fn in_own_process(test: &str) -> bool {
    const CHILD: &str = "BLACKBOX_ISOLATED_TEST";
    if std::env::var(CHILD).is_ok_and(|name| name == test) {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--include-ignored"])
        .env(CHILD, test)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the child ran the test"
    );
    false
}

/// The process's peak resident memory so far (VmHWM), in bytes.
pub fn peak_rss() -> usize {
    memory_of("/proc/self/status", "VmHWM:")
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of the process whose `/proc/<pid>/status` is `file`,
/// in bytes.
pub fn memory_of(file: &str, key: &str) -> usize {
    let status = std::fs::read_to_string(file).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// Environment variables for `Builder::with_env_from`.
pub fn vars(
    pairs: &[(&str, &str)],
) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}
