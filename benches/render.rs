//! Library-level benchmarks of the pure pipeline on the bundled example:
//! merging one environment's layers, and rendering it (merge, templates,
//! parse, validate, layout). Run with `cargo bench --bench render`.

use std::path::Path;

use hydrant::channel::ChannelSpec;
use hydrant::pipeline;
use hydrant::project::{ChannelSettings, Project};
use hydrant::repo::EnvironmentFiles;

fn main() {
    divan::main();
}

fn example() -> Project {
    Project::open(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &ChannelSettings::local(),
    )
    .expect("the bundled example opens")
}

fn inputs(project: &Project, env: &str) -> (ChannelSpec, EnvironmentFiles) {
    project
        .inputs_of(env)
        .expect("the bundled environment loads")
}

const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// The three layers of one environment merged, with provenance.
#[divan::bench(args = ENVS)]
fn merge(bencher: divan::Bencher, env: &str) {
    let project = example();
    let (spec, files) = inputs(&project, env);
    bencher.bench(|| hydrant::spec::merge(&pipeline::layers(&spec, &files)));
}

/// One environment from its inputs to the files of `rendered/<env>/`.
#[divan::bench(args = ENVS)]
fn render(bencher: divan::Bencher, env: &str) {
    let project = example();
    let (spec, files) = inputs(&project, env);
    bencher.bench(|| {
        pipeline::build(project.engine(), &spec, &files).expect("the bundled environment renders")
    });
}

/// The digest of one environment's inputs: what a no-op reconcile computes
/// instead of rendering.
#[divan::bench(args = ENVS)]
fn input_digest(bencher: divan::Bencher, env: &str) {
    let project = example();
    let (spec, files) = inputs(&project, env);
    bencher.bench(|| pipeline::inputs(project.engine(), &spec, &files).digest());
}
