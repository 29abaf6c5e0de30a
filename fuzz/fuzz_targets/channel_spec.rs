#![no_main]

// The check lives in hydrant::fuzzing so that `cargo test` runs it over the seeds too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hydrant::fuzzing::channel_spec(data));
