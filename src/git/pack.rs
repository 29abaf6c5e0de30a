//! A cycle's new objects as one pack file (version 2) with its index.
//!
//! [`PackWriter`] streams objects into a temporary file as they are made:
//! blobs, trees and commits whole, and a tree that differs from one already
//! in the pack by a few entries as a delta against it (the `rendered/` tree
//! of every environment's commit differs from the base's by one entry, so it
//! costs a few dozen bytes, not the whole listing). A delta's base is always
//! written into the same pack first, so the pack stands alone: git and
//! libgit2 read it as it is. [`PackWriter::finish`] completes the header and
//! the trailer and builds the index; [`Finished::install`] puts both into a
//! repository's `objects/pack` so that nothing sees the pack before it is
//! complete and durable (pack renamed first, index last, both synced).
//!
//! It keeps only the id, offset and checksum of each object in memory: the
//! memory of a cycle does not grow with the size of what it writes.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};

/// One piece of an object built from another: bytes of the base, or new ones.
pub(crate) enum Piece<'a> {
    Copy { offset: usize, len: usize },
    Insert(&'a [u8]),
}

struct Entry {
    oid: Oid,
    offset: u64,
    crc: u32,
}

/// A pack being written to a temporary file.
pub(crate) struct PackWriter {
    file: BufWriter<File>,
    path: PathBuf,
    offset: u64,
    entries: Vec<Entry>,
    seen: HashSet<Oid>,
}

/// A complete pack, still under its temporary name, with its index.
pub(crate) struct Finished {
    path: PathBuf,
    idx: Vec<u8>,
    /// The pack's checksum in hex: its name is `pack-<name>.pack`.
    pub name: String,
    pub objects: usize,
}

fn kind_name(kind: ObjectType) -> &'static str {
    match kind {
        ObjectType::Commit => "commit",
        ObjectType::Tree => "tree",
        ObjectType::Tag => "tag",
        _ => "blob",
    }
}

fn kind_code(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Tag => 4,
        _ => 3,
    }
}

/// The id git gives an object made of `pieces` of `base` (`len` bytes in
/// all), without putting it together.
pub(crate) fn object_id(kind: ObjectType, base: &[u8], pieces: &[Piece<'_>]) -> Oid {
    let len: usize = pieces.iter().map(Piece::len).sum();
    let mut hash = Sha1::new();
    hash.update(format!("{} {len}\0", kind_name(kind)).as_bytes());
    for piece in pieces {
        match piece {
            Piece::Copy { offset, len } => hash.update(&base[*offset..offset + len]),
            Piece::Insert(bytes) => hash.update(bytes),
        }
    }
    Oid::from_bytes(&hash.finalize()).unwrap_or(Oid::ZERO_SHA1)
}

impl Piece<'_> {
    fn len(&self) -> usize {
        match self {
            Piece::Copy { len, .. } => *len,
            Piece::Insert(bytes) => bytes.len(),
        }
    }
}

/// A size as git's delta header writes it: seven bits a byte, low first.
fn delta_size(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The delta that makes the object of `pieces` from `base` (git's copy and
/// insert instructions).
fn delta(base: &[u8], pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    delta_size(&mut out, base.len());
    delta_size(&mut out, pieces.iter().map(Piece::len).sum());
    for piece in pieces {
        match piece {
            Piece::Copy { offset, len } => {
                let (mut at, mut left) = (*offset, *len);
                while left > 0 {
                    let size = left.min(0xff_ffff);
                    let mut op = 0x80u8;
                    let mut args = Vec::with_capacity(7);
                    for i in 0..4 {
                        let b = ((at >> (8 * i)) & 0xff) as u8;
                        if b != 0 {
                            op |= 1 << i;
                            args.push(b);
                        }
                    }
                    for i in 0..3 {
                        let b = ((size >> (8 * i)) & 0xff) as u8;
                        if b != 0 {
                            op |= 0x10 << i;
                            args.push(b);
                        }
                    }
                    out.push(op);
                    out.extend(args);
                    at += size;
                    left -= size;
                }
            }
            Piece::Insert(bytes) => {
                for chunk in bytes.chunks(0x7f) {
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
            }
        }
    }
    out
}

impl PackWriter {
    /// Starts a pack in a temporary file in `dir`.
    pub(crate) fn create(dir: &Path) -> io::Result<PackWriter> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("tmp_hydrant_{}_new.pack", std::process::id()));
        let mut file = BufWriter::with_capacity(
            1 << 20,
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        // The count is written when the pack is finished.
        file.write_all(b"PACK\0\0\0\x02\0\0\0\0")?;
        Ok(PackWriter {
            file,
            path,
            offset: 12,
            entries: Vec::new(),
            seen: HashSet::new(),
        })
    }

    fn entry(
        &mut self,
        oid: Oid,
        code: u8,
        size: usize,
        base: Option<Oid>,
        data: &[u8],
    ) -> io::Result<()> {
        let mut head = Vec::with_capacity(32);
        let mut n = size >> 4;
        let first = (code << 4) | (size & 0x0f) as u8;
        head.push(if n > 0 { first | 0x80 } else { first });
        while n > 0 {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            head.push(if n > 0 { byte | 0x80 } else { byte });
        }
        if let Some(base) = base {
            head.extend_from_slice(base.as_bytes());
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data)?;
        let body = z.finish()?;
        let mut crc = flate2::Crc::new();
        crc.update(&head);
        crc.update(&body);
        self.file.write_all(&head)?;
        self.file.write_all(&body)?;
        self.entries.push(Entry {
            oid,
            offset: self.offset,
            crc: crc.sum(),
        });
        self.seen.insert(oid);
        self.offset += (head.len() + body.len()) as u64;
        Ok(())
    }

    /// Writes an object whole (once: an object the pack holds is not
    /// written again); its id.
    pub(crate) fn whole(&mut self, kind: ObjectType, data: &[u8]) -> io::Result<Oid> {
        let oid = object_id(
            kind,
            data,
            &[Piece::Copy {
                offset: 0,
                len: data.len(),
            }],
        );
        if !self.seen.contains(&oid) {
            self.entry(oid, kind_code(kind), data.len(), None, data)?;
        }
        Ok(oid)
    }

    /// Writes the object made of `pieces` of `base` (an object of the same
    /// kind, whole, with id `base_id`) as a delta against it, writing `base`
    /// first if the pack does not hold it; the new object's id.
    pub(crate) fn derived(
        &mut self,
        kind: ObjectType,
        base_id: Oid,
        base: &[u8],
        pieces: &[Piece<'_>],
    ) -> io::Result<Oid> {
        let oid = object_id(kind, base, pieces);
        if oid == base_id || self.seen.contains(&oid) {
            return Ok(oid);
        }
        if !self.seen.contains(&base_id) {
            self.entry(base_id, kind_code(kind), base.len(), None, base)?;
        }
        let delta = delta(base, pieces);
        self.entry(oid, 7, delta.len(), Some(base_id), &delta)?;
        Ok(oid)
    }

    /// Completes the pack: its count, its checksum and its index. `None`
    /// when it holds nothing (its file is removed).
    pub(crate) fn finish(self) -> io::Result<Option<Finished>> {
        let PackWriter {
            file,
            path,
            mut entries,
            ..
        } = self;
        if entries.is_empty() {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        let count = u32::try_from(entries.len())
            .map_err(|_| io::Error::other("too many objects for one pack"))?;
        file.seek(SeekFrom::Start(8))?;
        file.write_all(&count.to_be_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        let mut hash = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        let sum: [u8; 20] = hash.finalize().into();
        file.seek(SeekFrom::End(0))?;
        file.write_all(&sum)?;
        entries.sort_by_key(|e| e.oid);
        let idx = index(&entries, &sum);
        Ok(Some(Finished {
            path,
            idx,
            name: hex::encode(sum),
            objects: entries.len(),
        }))
    }
}

/// A pack index, version 2, of `entries` sorted by id.
fn index(entries: &[Entry], pack_sum: &[u8; 20]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1032 + entries.len() * 28 + 40);
    out.extend_from_slice(b"\xfftOc\0\0\0\x02");
    let mut fanout = [0u32; 256];
    for e in entries {
        fanout[e.oid.as_bytes()[0] as usize] += 1;
    }
    let mut total = 0u32;
    for n in fanout {
        total += n;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for e in entries {
        out.extend_from_slice(e.oid.as_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries {
        match u32::try_from(e.offset) {
            Ok(o) if o < 0x8000_0000 => out.extend_from_slice(&o.to_be_bytes()),
            _ => {
                let at = 0x8000_0000u32 | (large.len() / 8) as u32;
                out.extend_from_slice(&at.to_be_bytes());
                large.extend_from_slice(&e.offset.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&large);
    out.extend_from_slice(pack_sum);
    let sum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Finished {
    /// Puts the pack and its index into `pack_dir` (a repository's
    /// `objects/pack`): both written under temporary names (and, when
    /// `durable`, synced; `pause` runs then), the pack renamed first, the
    /// index last (git sees a pack by its index), then the directory
    /// synced. The temporary file stays for other installs until
    /// [`Finished::remove`]. The work directory, a cache that is cloned
    /// afresh when unusable, does without the syncs.
    pub(crate) fn install(
        &self,
        pack_dir: &Path,
        durable: bool,
        pause: impl Fn(),
    ) -> io::Result<()> {
        std::fs::create_dir_all(pack_dir)?;
        let pack = pack_dir.join(format!("pack-{}.pack", self.name));
        let idx = pack_dir.join(format!("pack-{}.idx", self.name));
        if idx.exists() {
            return Ok(());
        }
        let stem = format!("tmp_hydrant_{}", std::process::id());
        let (tmp_pack, tmp_idx) = (
            pack_dir.join(format!("{stem}.pack")),
            pack_dir.join(format!("{stem}.idx")),
        );
        std::fs::copy(&self.path, &tmp_pack)?;
        let mut file = File::create(&tmp_idx)?;
        file.write_all(&self.idx)?;
        if durable {
            File::open(&tmp_pack)?.sync_all()?;
            file.sync_all()?;
        }
        pause();
        std::fs::rename(&tmp_pack, &pack)?;
        std::fs::rename(&tmp_idx, &idx)?;
        match durable {
            true => sync_dir(pack_dir),
            false => Ok(()),
        }
    }

    /// Removes the temporary pack.
    /// The pack file, under its temporary name.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the pack holds object `oid` (looked up in its index).
    pub(crate) fn contains(&self, oid: Oid) -> bool {
        let count = self.objects;
        let ids = self.idx.get(1032..1032 + count * 20).unwrap_or(&[]);
        let (mut lo, mut hi) = (0, ids.len() / 20);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match ids[mid * 20..mid * 20 + 20].cmp(oid.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    pub(crate) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes the temporary files of hydrant runs that are gone (stopped
/// while they wrote a pack) from `pack_dir`; those of a live process (by
/// the process id in their name) stay.
pub(crate) fn remove_temporary(pack_dir: &Path) {
    for entry in std::fs::read_dir(pack_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("tmp_hydrant_") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = !pid.is_empty() && Path::new("/proc").join(&pid).exists();
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Tree entries in a tree object's bytes.
pub(crate) struct TreeEntry<'a> {
    pub start: usize,
    pub end: usize,
    pub name: &'a [u8],
    pub is_tree: bool,
    pub oid: Oid,
}

/// The entries of a tree object's bytes, in order.
pub(crate) fn tree_entries(raw: &[u8]) -> impl Iterator<Item = TreeEntry<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at;
        let space = start + raw.get(start..)?.iter().position(|b| *b == b' ')?;
        let nul = space + raw[space..].iter().position(|b| *b == 0)?;
        let end = nul + 21;
        let oid = Oid::from_bytes(raw.get(nul + 1..end)?).ok()?;
        at = end;
        Some(TreeEntry {
            start,
            end,
            name: &raw[space + 1..nul],
            is_tree: &raw[start..space] == b"40000",
            oid,
        })
    })
}

/// git's order of tree entries: names compared as bytes, a tree's as if it
/// ended in `/`.
fn entry_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then_with(|| {
        let end = |name: &[u8], tree| match name.get(n) {
            Some(c) => *c,
            None if tree => b'/',
            None => 0,
        };
        end(a, a_tree).cmp(&end(b, b_tree))
    })
}

/// The bytes of a tree entry.
pub(crate) fn tree_entry(mode: &str, name: &[u8], oid: Oid) -> Vec<u8> {
    let mut out = Vec::with_capacity(mode.len() + name.len() + 22);
    out.extend_from_slice(mode.as_bytes());
    out.push(b' ');
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(oid.as_bytes());
    out
}

/// The ranges of tree `raw` kept when the entry named `name` (a
/// sub-directory) is set to `entry`: the pieces of the new tree.
pub(crate) fn with_subtree<'a>(raw: &[u8], name: &[u8], entry: &'a [u8]) -> Vec<Piece<'a>> {
    let mut removed: Option<(usize, usize)> = None;
    let mut insert_at = raw.len();
    let mut placed = false;
    for e in tree_entries(raw) {
        if e.name == name {
            removed = Some((e.start, e.end));
            continue;
        }
        if !placed && entry_order(e.name, e.is_tree, name, true).is_gt() {
            insert_at = e.start;
            placed = true;
        }
    }
    let mut cuts: Vec<(usize, usize, bool)> = vec![(insert_at, insert_at, true)];
    if let Some((s, e)) = removed {
        cuts.push((s, e, false));
    }
    cuts.sort_by_key(|c| (c.0, c.2));
    let mut pieces = Vec::new();
    let mut at = 0;
    for (start, end, insert) in cuts {
        if start > at {
            pieces.push(Piece::Copy {
                offset: at,
                len: start - at,
            });
        }
        if insert {
            pieces.push(Piece::Insert(entry));
        }
        at = at.max(end);
    }
    if raw.len() > at {
        pieces.push(Piece::Copy {
            offset: at,
            len: raw.len() - at,
        });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(base: &[u8], pieces: &[Piece<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Copy { offset, len } => out.extend_from_slice(&base[*offset..offset + len]),
                Piece::Insert(b) => out.extend_from_slice(b),
            }
        }
        out
    }

    #[test]
    fn a_subtree_set_in_a_tree_lands_where_git_puts_it() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(repo_dir.path()).unwrap();
        let blob = repo.blob(b"x").unwrap();
        let sub = {
            let mut b = repo.treebuilder(None).unwrap();
            b.insert("f", blob, 0o100644).unwrap();
            b.write().unwrap()
        };
        let mut b = repo.treebuilder(None).unwrap();
        for name in ["a", "b-c", "b.txt", "c", "d"] {
            b.insert(name, sub, 0o040000).unwrap();
        }
        b.insert("b0", blob, 0o100644).unwrap();
        let base = b.write().unwrap();
        let raw = repo.odb().unwrap().read(base).unwrap().data().to_vec();
        for name in ["b", "a", "bb", "e", "c", "0"] {
            let entry = tree_entry("40000", name.as_bytes(), sub);
            let pieces = with_subtree(&raw, name.as_bytes(), &entry);
            let mut b = repo
                .treebuilder(Some(&repo.find_tree(base).unwrap()))
                .unwrap();
            b.insert(name, sub, 0o040000).unwrap();
            let odb = repo.odb().unwrap();
            let want = odb.read(b.write().unwrap()).unwrap();
            assert_eq!(assemble(&raw, &pieces), want.data(), "{name}");
            assert_eq!(
                object_id(ObjectType::Tree, &raw, &pieces),
                want.id(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_pack_with_deltas_is_read_back_by_libgit2() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut w = PackWriter::create(&dir.path().join("objects/pack")).unwrap();
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let base = w.whole(ObjectType::Blob, &big).unwrap();
        let insert = b"something new in the middle".to_vec();
        let pieces = [
            Piece::Copy {
                offset: 0,
                len: 70_000,
            },
            Piece::Insert(&insert),
            Piece::Copy {
                offset: 70_100,
                len: big.len() - 70_100,
            },
        ];
        let derived = w.derived(ObjectType::Blob, base, &big, &pieces).unwrap();
        let done = w.finish().unwrap().unwrap();
        assert_eq!(done.objects, 2);
        done.install(&dir.path().join("objects/pack"), true, || {})
            .unwrap();
        done.remove();
        let odb = repo.odb().unwrap();
        odb.refresh().unwrap();
        assert_eq!(odb.read(base).unwrap().data(), &big[..]);
        assert_eq!(
            odb.read(derived).unwrap().data(),
            &assemble(&big, &pieces)[..]
        );
    }
}
