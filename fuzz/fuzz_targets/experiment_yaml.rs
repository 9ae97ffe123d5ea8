//! Any text as an experiment file: a validated experiment or an error naming the file,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match experiment::parse_experiment(std::path::Path::new("fuzz.yaml"), text) {
        Ok(e) => assert!(!e.runs.is_empty()),
        Err(e) => assert!(e.to_string().starts_with("fuzz.yaml")),
    }
});
