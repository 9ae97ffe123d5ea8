//! Any text as an experiment file: a validated experiment or an error naming the file,
//! never a panic. Validation guarantees a validated experiment at least one run (a
//! grid is non-empty and `exclude` cannot remove all of it), each of a trainable depth
//! and batch size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match experiment::parse_experiment(std::path::Path::new("fuzz.yaml"), text) {
        Ok(e) => {
            assert!(!e.runs.is_empty());
            for run in &e.runs {
                assert!(experiment::depth_problem(run.arch, run.depth).is_none());
                assert!(run.train.batch_size >= experiment::MIN_BATCH);
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.yaml")),
    }
});
