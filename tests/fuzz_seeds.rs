//! The fuzz targets' checks (`hydrant::fuzzing`) on stable Rust: each runs over
//! its committed seeds (`fuzz/corpus/<target>/seed-*`) and over every input that
//! once broke it (`fuzz/regressions/<target>/`), so CI exercises them without
//! cargo-fuzz or nightly. The fuzzing itself is `cargo fuzz run <target>` (see
//! the README).

use std::path::Path;

/// Runs `check` on every seed and past crash of `target`; returns how many.
fn run(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    // Only committed files: a local fuzzing run leaves its finds beside the seeds.
    for (dir, prefix) in [
        (root.join("corpus").join(target), "seed-"),
        (root.join("regressions").join(target), ""),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
            {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "`{target}` fails on `{}`", path.display());
    }
    inputs.len()
}

#[test]
fn yaml_values_holds_on_its_seeds() {
    assert!(run("yaml_values", hydrant::fuzzing::yaml_values) >= 8);
}

#[test]
fn channel_spec_holds_on_its_seeds() {
    assert!(run("channel_spec", hydrant::fuzzing::channel_spec) >= 3);
}

#[test]
fn settings_file_holds_on_its_seeds() {
    assert!(run("settings_file", hydrant::fuzzing::settings_file) >= 5);
}

#[test]
fn template_holds_on_its_seeds() {
    assert!(run("template", hydrant::fuzzing::template) >= 4);
}
