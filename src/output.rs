//! Writing a rendered environment to a directory, all or nothing.
//!
//! The files are written into a fresh sibling directory, which then takes the
//! place of `<out>/<env>/`: a reader never sees a half-written environment, and
//! files of resources that are gone do not linger. A directory that already
//! holds exactly the files is left alone: re-rendering unchanged inputs writes
//! nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// `rendered <env>: <n> resources, <channel> <version> → <target>`: what
/// writing (or printing) an environment's render produced.
pub fn rendered_line(env: &str, rendered: &crate::pipeline::Rendered, target: &Path) -> String {
    format!(
        "rendered {env}: {} resources, {} {} → {}",
        rendered.manifests.len(),
        rendered.metadata.channel.name,
        rendered.metadata.channel.version,
        target.display()
    )
}

/// Writes `value` as pretty JSON and a newline to standard output while it
/// is serialized.
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed
/// over it), creating its directory.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), text)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `dir` holds exactly `files` (and nothing else).
fn holds_exactly(dir: &Path, files: &BTreeMap<String, String>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut count = 0;
    for entry in entries {
        let Ok(entry) = entry else { return false };
        count += 1;
        let name = entry.file_name();
        let Some(want) = name.to_str().and_then(|n| files.get(n)) else {
            return false;
        };
        match std::fs::read(entry.path()) {
            Ok(have) if have == want.as_bytes() => {}
            _ => return false,
        }
    }
    count == files.len()
}

/// Refuses a symbolic link at `path`: hydrant writes into the directories
/// it owns, never through a link to somewhere else.
pub fn refuse_link(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "`{}` is a symbolic link; hydrant does not write through links (hint: remove the link and let hydrant create the directory)",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Replaces `dir` with exactly `files`. A `dir` that is a symbolic link is
/// refused, not followed.
pub fn replace_dir(dir: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    refuse_link(dir)?;
    if holds_exactly(dir, files) {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "output directory has no name",
        )
    })?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.hydrant-new-"))
        .tempdir_in(parent)?;
    for (file, text) in files {
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("refusing to write file `{file}` outside the environment's directory"),
            ));
        }
        std::fs::File::create(staging.path().join(file))?.write_all(text.as_bytes())?;
    }
    let staged = staging.keep();
    if dir.exists() {
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.hydrant-old-"))
            .tempdir_in(parent)?
            .keep();
        std::fs::remove_dir(&old)?;
        std::fs::rename(dir, &old)?;
        if let Err(e) = std::fs::rename(&staged, dir) {
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&staged, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("dev");
        let mut files = BTreeMap::new();
        files.insert("a.yaml".to_string(), "a: 1\n".to_string());
        files.insert("b.yaml".to_string(), "b: 1\n".to_string());
        replace_dir(&target, &files).unwrap();
        files.remove("b.yaml");
        replace_dir(&target, &files).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["a.yaml"]);
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["dev"]);
    }

    #[test]
    fn an_unchanged_directory_is_not_written_again() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("dev");
        let mut files = BTreeMap::new();
        files.insert("a.yaml".to_string(), "a: 1\n".to_string());
        replace_dir(&target, &files).unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&target);
        replace_dir(&target, &files).unwrap();
        assert_eq!(inode(&target), before, "left alone");
        std::fs::write(target.join("stray.yaml"), "x").unwrap();
        replace_dir(&target, &files).unwrap();
        assert_ne!(inode(&target), before, "a stray file makes it differ");
        assert!(!target.join("stray.yaml").exists());
    }

    #[test]
    fn issue_13_an_output_directory_that_is_a_symlink_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        std::fs::write(victim.path().join("keep.txt"), "mine").unwrap();
        std::os::unix::fs::symlink(victim.path(), d.path().join("dev")).unwrap();
        let mut files = BTreeMap::new();
        files.insert("a.yaml".to_string(), "a: 1\n".to_string());
        let err = replace_dir(&d.path().join("dev"), &files).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_to_string(victim.path().join("keep.txt")).unwrap(),
            "mine"
        );
        assert!(!victim.path().join("a.yaml").exists());
        assert!(refuse_link(victim.path()).is_ok());
    }

    #[test]
    fn file_names_cannot_escape_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert("../escape.yaml".to_string(), "x".to_string());
        assert!(replace_dir(&d.path().join("dev"), &files).is_err());
        assert!(!d.path().join("escape.yaml").exists());
        assert!(!d.path().join("dev").exists());
    }
}
