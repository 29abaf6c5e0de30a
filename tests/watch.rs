//! `hydrant watch`, run as a binary against a copy of the bundled example: an
//! edit re-renders only the environment it touches, a broken edit is reported
//! and writes nothing, and the watch survives it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{Example, hydrant, parse_stream, tree};

/// Generous: the machine may be busy compiling.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The lines of one of the child's streams, read by a thread.
struct Lines {
    name: &'static str,
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn read(name: &'static str, stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            name,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line, after the first `from` seen, that `wanted` accepts.
    fn wait_for(&mut self, from: usize, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen[from..].iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {what} on {} within {TIMEOUT:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} closed before {what}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Takes in whatever has arrived so far.
    fn drain(&mut self) {
        self.seen.extend(self.rx.try_iter());
    }
}

/// A running `hydrant watch`, killed when the test ends, passes or panics.
struct Watch {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Watch {
    fn start(repo: &Path) -> Watch {
        let mut child = hydrant()
            .args(["watch", "--repo"])
            .arg(repo)
            .current_dir(repo)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Lines::read("stdout", child.stdout.take().unwrap());
        let stderr = Lines::read("stderr", child.stderr.take().unwrap());
        Watch {
            child,
            stdout,
            stderr,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replicas(ex: &Example) -> serde_json::Value {
    let docs = parse_stream(&ex.read("rendered/dev/deployment-wandb-app.yaml"));
    docs[0]["spec"]["replicas"].clone()
}

const DIFF_LINE: &str = "~ rendered/dev/deployment-wandb-app.yaml (+1 −1 lines)";

#[test]
fn an_edit_re_renders_only_its_environment_and_a_broken_edit_writes_nothing() {
    let ex = Example::new();
    let values = "environments/dev/values.yaml";
    let original = ex.read(values);
    let with_replicas = |n: u32| original.replace("  replicas: 1\n", &format!("  replicas: {n}\n"));
    assert_ne!(
        with_replicas(3),
        original,
        "dev's values.yaml sets replicas: 1"
    );

    let mut w = Watch::start(ex.path());
    w.stdout
        .wait_for(0, "the watch starting", |l| l.starts_with("watching "));
    for env in ["dev", "staging", "prod"] {
        assert!(
            w.stdout
                .seen
                .iter()
                .any(|l| l.starts_with(&format!("rendered {env}: "))),
            "{env} rendered first:\n{}",
            w.stdout.seen.join("\n")
        );
    }
    assert!(
        w.stdout
            .seen
            .iter()
            .any(|l| l.trim() == "+ rendered/dev/deployment-wandb-app.yaml"),
        "{:?}",
        w.stdout.seen
    );
    assert_eq!(replicas(&ex), 1);
    let staging = tree(&ex.path().join("rendered/staging"));
    let started = w.stdout.seen.len();

    // (1) An override in dev changes: dev, and only dev, is re-rendered.
    ex.write(values, &with_replicas(3));
    let line = w
        .stdout
        .wait_for(started, "a re-render of dev", |l| l.trim() == DIFF_LINE);
    assert!(line.starts_with("  ~ "), "{line}");
    assert_eq!(replicas(&ex), 3, "the new value is on disk");
    let change = w
        .stdout
        .wait_for(started, "the change", |l| l.starts_with("changed "));
    assert_eq!(
        change,
        "changed environments/dev/values.yaml: re-rendering dev"
    );

    // (2) Broken YAML: reported with the file's name; rendered/dev/ stays.
    let before = tree(&ex.path().join("rendered/dev"));
    let errors = w.stderr.seen.len();
    ex.write(values, &format!("{}\napp: [unclosed\n", with_replicas(7)));
    w.stderr.wait_for(errors, "the problem of dev", |l| {
        l.contains("`environments/dev/values.yaml`") && l.contains("invalid YAML")
    });
    w.stderr.wait_for(errors, "the error header", |l| {
        l.starts_with("error: environment `dev`")
    });
    assert_eq!(tree(&ex.path().join("rendered/dev")), before);
    assert_eq!(replicas(&ex), 3);

    // (3) Fixed: the watch survived and renders again.
    let fixed = w.stdout.seen.len();
    ex.write(values, &with_replicas(5));
    w.stdout.wait_for(fixed, "a re-render after the fix", |l| {
        l.trim() == DIFF_LINE
    });
    assert_eq!(replicas(&ex), 5);

    // Nothing but dev was re-rendered after the start, nor written.
    w.stdout.drain();
    let after: Vec<&String> = w.stdout.seen[started..].iter().collect();
    assert!(
        after
            .iter()
            .all(|l| !l.starts_with("rendered staging") && !l.starts_with("rendered prod")),
        "{after:#?}"
    );
    assert!(
        after
            .iter()
            .filter(|l| l.starts_with("changed "))
            .all(|l| l.ends_with(": re-rendering dev")),
        "{after:#?}"
    );
    assert_eq!(tree(&ex.path().join("rendered/staging")), staging);

    // SIGTERM stops it cleanly.
    let pid = w.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}
