//! Key files: reading one (only when group and others have no access), creating one that
//! appears complete or not at all, and editing one (add, activate, remove a key) by atomic
//! replacement that keeps its comments and order.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize as _, Zeroizing};

use super::{KeySource, Keyring, KeyringError, MasterKey, random_bytes};

/// File name of the embedded default key file inside the data directory.
pub const DEFAULT_KEY_FILE_NAME: &str = "master.keys";

/// A key file larger than this is not a key file (and is not read into memory whole).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The embedded default key file: `DATA_DIR/master.keys`.
pub fn default_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_KEY_FILE_NAME)
}

impl Keyring {
    /// Loads a key file (format in the [module docs](super)). Refuses a file that group or
    /// others may read or write.
    pub fn load_file(path: &Path) -> Result<Keyring, KeyringError> {
        let text = read_key_file(path)?;
        Keyring::parse_file_text(&text, path)
    }

    fn parse_file_text(text: &str, path: &Path) -> Result<Keyring, KeyringError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let origin = || format!("{} line {}", path.display(), n + 1);
            keys.push(MasterKey::parse_entry(line, &origin)?);
        }
        Keyring::with_source(keys, KeySource::File(path.to_owned()), || {
            path.display().to_string()
        })
    }

    /// Creates a key file at `path` holding one fresh key (`mk1`), mode `0600`, and returns its
    /// keyring. Refuses to replace an existing file. Missing parent directories are created
    /// (mode `0700`).
    ///
    /// The file appears complete or not at all: it is written under a temporary name and then
    /// hard-linked into place, which fails if `path` exists, so two processes starting together
    /// cannot both create a key (one gets [`KeyringError::AlreadyExists`] and loads the other's).
    pub fn create_file(path: &Path) -> Result<Keyring, KeyringError> {
        let key = MasterKey::generate("mk1")?;
        let mut text = Zeroizing::new(String::from(FILE_HEADER));
        text.push_str(&key.export_entry());
        text.push('\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir_all(dir)
                .map_err(|e| KeyringError::io(dir, "create directory", e))?;
        }
        let tmp = write_temp_file(path, &text)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(KeyringError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(KeyringError::io(path, "create", e)),
        }
        sync_parent_dir(path)?;
        Keyring::with_source(vec![key], KeySource::File(path.to_owned()), || {
            path.display().to_string()
        })
    }

    /// Loads the key file at `path`, creating it with one fresh key when it does not exist.
    /// Returns `true` as the second value when it created the file, so the caller can say where
    /// the new key is (and that it must be backed up: without it the stored secrets are lost).
    pub fn load_or_create(path: &Path) -> Result<(Keyring, bool), KeyringError> {
        match Keyring::load_file(path) {
            Ok(ring) => Ok((ring, false)),
            Err(KeyringError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                match Keyring::create_file(path) {
                    Ok(ring) => Ok((ring, true)),
                    // Another process created it between our two steps: use theirs.
                    Err(KeyringError::AlreadyExists { .. }) => {
                        Ok((Keyring::load_file(path)?, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Adds a fresh key to the key file at `path` as the new active key (first entry) and returns
    /// its id (`mkN`, one past the highest `mkN` in the file). For a single instance; with several
    /// instances add the key everywhere first ([`Keyring::add_key_to_file`] with
    /// `activate = false`) and activate it afterwards.
    pub fn add_new_key_to_file(path: &Path) -> Result<String, KeyringError> {
        let ring = Keyring::load_file(path)?;
        let key = MasterKey::generate(&ring.next_key_id())?;
        Keyring::add_key_to_file(path, &key, true)?;
        Ok(key.id().to_owned())
    }

    /// Adds `key` to the key file at `path`: first (active) when `activate`, else last. A key
    /// already there (the same id and bytes) is left where it is ([`KeyAdded::AlreadyThere`],
    /// the file untouched), so distributing a key twice is harmless; another key under the same
    /// id is refused ([`KeyringError::IdTaken`]).
    pub fn add_key_to_file(
        path: &Path,
        key: &MasterKey,
        activate: bool,
    ) -> Result<KeyAdded, KeyringError> {
        let mut added = KeyAdded::AlreadyThere;
        edit_key_file(path, |ring, lines| {
            if let Some(held) = ring.key(key.id()) {
                if held.same_key(key) {
                    return Ok(false);
                }
                return Err(KeyringError::IdTaken {
                    path: path.to_owned(),
                    id: key.id().to_owned(),
                    held: held.fingerprint(),
                    given: key.fingerprint(),
                });
            }
            let at = if activate {
                first_key_line(lines)
            } else {
                last_key_line(lines).map_or(lines.len(), |i| i + 1)
            };
            lines.insert(at, FileLine::key(key.id().to_owned(), key.export_entry()));
            added = KeyAdded::Added;
            Ok(true)
        })?;
        Ok(added)
    }

    /// Makes key `id` (already in the file) the active one by moving it to the first entry.
    pub fn activate_key_in_file(path: &Path, id: &str) -> Result<(), KeyringError> {
        edit_key_file(path, |_, lines| {
            let i = find_key_line(lines, path, id)?;
            let line = lines.remove(i);
            lines.insert(first_key_line(lines), line);
            Ok(true)
        })
    }

    /// Removes key `id` from the key file. Refuses the active key (activate another one and
    /// rewrap first). The caller checks that no stored value is still sealed with `id`: values
    /// sealed with a dropped key cannot be opened again unless the key is added back.
    pub fn remove_key_from_file(path: &Path, id: &str) -> Result<(), KeyringError> {
        edit_key_file(path, |ring, lines| {
            if ring.active_id() == id {
                return Err(KeyringError::ActiveKey {
                    path: path.to_owned(),
                    id: id.to_owned(),
                });
            }
            let i = find_key_line(lines, path, id)?;
            lines.remove(i);
            Ok(true)
        })
    }
}

/// What [`Keyring::add_key_to_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAdded {
    /// The key is in the file now.
    Added,
    /// The file held this very key already (same id, same bytes): nothing changed.
    AlreadyThere,
}

const FILE_HEADER: &str = "\
# DropFix master keys: they decrypt the workspace secrets stored in the database.
# Keep this file private (mode 0600) and back it up apart from the database:
# without it the stored secrets cannot be recovered.
# One `id:base64-key` per line; the first key seals new secrets, every key opens.
";

/// One line of a key file, kept verbatim so that edits preserve comments and order.
struct FileLine {
    /// The key id when this line holds a key.
    key_id: Option<String>,
    text: Zeroizing<String>,
}

impl FileLine {
    fn key(id: String, text: Zeroizing<String>) -> FileLine {
        FileLine {
            key_id: Some(id),
            text,
        }
    }
}

fn first_key_line(lines: &[FileLine]) -> usize {
    lines
        .iter()
        .position(|l| l.key_id.is_some())
        .unwrap_or(lines.len())
}

fn last_key_line(lines: &[FileLine]) -> Option<usize> {
    lines.iter().rposition(|l| l.key_id.is_some())
}

/// The line holding key `id` of the key file at `path`.
fn find_key_line(lines: &[FileLine], path: &Path, id: &str) -> Result<usize, KeyringError> {
    lines
        .iter()
        .position(|l| l.key_id.as_deref() == Some(id))
        .ok_or_else(|| KeyringError::NoSuchKey {
            path: path.to_owned(),
            id: id.to_owned(),
        })
}

/// Loads the key file (with every check of [`Keyring::load_file`]), lets `edit` change its lines,
/// checks that the result is still a valid keyring and replaces the file atomically. When `edit`
/// answers `false` (nothing to change) the file is left alone: a running server sees no change.
fn edit_key_file(
    path: &Path,
    edit: impl FnOnce(&Keyring, &mut Vec<FileLine>) -> Result<bool, KeyringError>,
) -> Result<(), KeyringError> {
    let text = read_key_file(path)?;
    let ring = Keyring::parse_file_text(&text, path)?;
    let mut lines: Vec<FileLine> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim();
            let key_id = (!trimmed.is_empty() && !trimmed.starts_with('#'))
                .then(|| trimmed.split_once(':').map(|(id, _)| id.trim().to_owned()))
                .flatten();
            FileLine {
                key_id,
                text: Zeroizing::new(line.to_owned()),
            }
        })
        .collect();
    if !edit(&ring, &mut lines)? {
        return Ok(());
    }
    let mut new_text = Zeroizing::new(String::with_capacity(text.len() + 64));
    for line in &lines {
        new_text.push_str(&line.text);
        new_text.push('\n');
    }
    // Never write a file that would not load.
    Keyring::parse_file_text(&new_text, path)?;
    // Replace the file a symlink points at, not the link: key files mounted from a secret
    // store are often links, and replacing the link would silently detach it.
    let target = fs::canonicalize(path).map_err(|e| KeyringError::io(path, "resolve", e))?;
    let tmp = write_temp_file(&target, &new_text)?;
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(KeyringError::io(&target, "replace", e));
    }
    sync_parent_dir(&target)
}

/// Reads a key file after checking (on the open file, so the check and the read see the same
/// file) that group and others have no access to it.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyringError> {
    let file = File::open(path).map_err(|e| KeyringError::io(path, "open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| KeyringError::io(path, "inspect", e))?;
    if !meta.is_file() {
        return Err(KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: "is not a regular file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyringError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyringError::io(path, "read", e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: format!("is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file"),
        });
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(KeyringError::Invalid {
                origin: path.display().to_string(),
                problem: "is not UTF-8 text".into(),
            })
        }
    }
}

/// Writes `text` to a new file next to `path`, created with mode 0600 from the start (never
/// loosened and tightened afterwards), flushed to disk. Returns its path.
fn write_temp_file(path: &Path, text: &str) -> Result<PathBuf, KeyringError> {
    let name = path
        .file_name()
        .ok_or_else(|| KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: "is not a file path".into(),
        })?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", hex::encode(random_bytes::<8>())));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(KeyringError::io(&tmp, "write", e))
        }
    }
}

fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a rename or link in the file's directory durable.
fn sync_parent_dir(path: &Path) -> Result<(), KeyringError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| KeyringError::io(dir, "sync directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::sealing::test_support::{AAD, SECRET, entry};
    use crate::sealing::{SealError, sealed_key_id};

    #[test]
    fn sealing_rotation_add_rewrap_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_key_file(dir.path());
        let (ring1, created) = Keyring::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(ring1.active_id(), "mk1");
        let sealed_old = ring1.seal(SECRET, AAD);

        let new_id = Keyring::add_new_key_to_file(&path).unwrap();
        assert_eq!(new_id, "mk2");
        let (ring2, created) = Keyring::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(ring2.key_ids().collect::<Vec<_>>(), ["mk2", "mk1"]);
        // The old key still opens what it sealed; new values use the new key.
        assert_eq!(ring2.unseal(&sealed_old, AAD).unwrap().as_str(), SECRET);
        assert_eq!(sealed_key_id(&ring2.seal(SECRET, AAD)), Some("mk2"));

        let rewrapped = ring2
            .rewrap(&sealed_old, AAD)
            .unwrap()
            .expect("moved to mk2");
        assert_eq!(sealed_key_id(&rewrapped), Some("mk2"));
        assert_eq!(ring2.rewrap(&rewrapped, AAD).unwrap(), None);
        // A rewrap keeps the binding to the record.
        assert!(ring2.rewrap(&sealed_old, b"other").is_err());

        Keyring::remove_key_from_file(&path, "mk1").unwrap();
        let ring3 = Keyring::load_file(&path).unwrap();
        assert_eq!(ring3.key_ids().collect::<Vec<_>>(), ["mk2"]);
        assert_eq!(ring3.unseal(&rewrapped, AAD).unwrap().as_str(), SECRET);
        let err = ring3.unseal(&sealed_old, AAD).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey { ref key_id, .. } if key_id == "mk1"));
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn sealing_multi_instance_rotation_add_then_activate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        let ring1 = Keyring::create_file(&path).unwrap();
        let sealed_old = ring1.seal(SECRET, AAD);

        // The new key is made once and its entry handed to every instance.
        let generated = MasterKey::generate(&ring1.next_key_id()).unwrap();
        let mk2 = MasterKey::parse(&generated.export_entry()).unwrap();
        assert_eq!(mk2.id(), "mk2");
        assert_eq!(
            Keyring::add_key_to_file(&path, &mk2, false).unwrap(),
            KeyAdded::Added
        );
        let staged = Keyring::load_file(&path).unwrap();
        assert_eq!(
            staged.active_id(),
            "mk1",
            "adding without activating keeps mk1 active"
        );
        assert!(staged.contains("mk2"));
        // Adding the same key again changes nothing (not even the file's time, which running
        // servers watch); another key under the same id is refused, naming both fingerprints.
        let before = (
            fs::read(&path).unwrap(),
            fs::metadata(&path).unwrap().modified().unwrap(),
        );
        assert_eq!(
            Keyring::add_key_to_file(&path, &mk2, true).unwrap(),
            KeyAdded::AlreadyThere
        );
        let other = MasterKey::generate("mk2").unwrap();
        let err = Keyring::add_key_to_file(&path, &other, false).unwrap_err();
        assert!(matches!(err, KeyringError::IdTaken { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&mk2.fingerprint()) && text.contains(&other.fingerprint()));
        let after = (
            fs::read(&path).unwrap(),
            fs::metadata(&path).unwrap().modified().unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(Keyring::load_file(&path).unwrap().active_id(), "mk1");

        Keyring::activate_key_in_file(&path, "mk2").unwrap();
        let active = Keyring::load_file(&path).unwrap();
        assert_eq!(active.key_ids().collect::<Vec<_>>(), ["mk2", "mk1"]);
        // An instance that only staged mk2 opens what the activated one seals.
        assert_eq!(
            staged
                .unseal(&active.seal(SECRET, AAD), AAD)
                .unwrap()
                .as_str(),
            SECRET
        );
        assert!(active.rewrap(&sealed_old, AAD).unwrap().is_some());
        assert!(matches!(
            Keyring::activate_key_in_file(&path, "mk9"),
            Err(KeyringError::NoSuchKey { .. })
        ));
        // The file kept its comments and its mode.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# DropFix master keys"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn sealing_remove_refuses_active_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        Keyring::create_file(&path).unwrap();
        let err = Keyring::remove_key_from_file(&path, "mk1").unwrap_err();
        assert!(matches!(err, KeyringError::ActiveKey { .. }), "{err}");
        assert!(err.to_string().contains("active key"), "{err}");
        assert!(matches!(
            Keyring::remove_key_from_file(&path, "mk7"),
            Err(KeyringError::NoSuchKey { .. })
        ));
        assert_eq!(Keyring::load_file(&path).unwrap().active_id(), "mk1");
    }

    #[cfg(unix)]
    #[test]
    fn sealing_created_key_file_is_0600_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("master.keys");
        let ring = Keyring::create_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let before = fs::read(&path).unwrap();
        let err = Keyring::create_file(&path).unwrap_err();
        assert!(matches!(err, KeyringError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before, "existing file untouched");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // The created ring and the file agree.
        let loaded = Keyring::load_file(&path).unwrap();
        assert_eq!(
            loaded
                .unseal(&ring.seal(SECRET, AAD), AAD)
                .unwrap()
                .as_str(),
            SECRET
        );
        assert_eq!(loaded.source(), &KeySource::File(path.clone()));
    }

    #[cfg(unix)]
    #[test]
    fn sealing_edit_through_a_symlink_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.keys");
        let link = dir.path().join("master.keys");
        Keyring::create_file(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        Keyring::add_new_key_to_file(&link).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(Keyring::load_file(&real).unwrap().active_id(), "mk2");
        assert_eq!(Keyring::load_file(&link).unwrap().active_id(), "mk2");
    }

    #[cfg(unix)]
    #[test]
    fn sealing_key_file_open_to_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        Keyring::create_file(&path).unwrap();
        for mode in [0o640, 0o604, 0o620, 0o602, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Keyring::load_file(&path).unwrap_err();
            assert!(
                matches!(err, KeyringError::InsecurePermissions { .. }),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
            // load_or_create must not treat it as missing and must not edit it either.
            assert!(Keyring::load_or_create(&path).is_err());
            assert!(Keyring::add_new_key_to_file(&path).is_err());
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Keyring::load_file(&path).is_ok());
    }

    #[test]
    fn sealing_key_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let write = |text: &str| {
            let _ = fs::remove_file(&path);
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        };
        write(&format!(
            "# comment\n\n  {}  \n# another\n{}\n",
            entry("2026-11", 1),
            entry("mk1", 2)
        ));
        let ring = Keyring::load_file(&path).unwrap();
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["2026-11", "mk1"]);
        assert_eq!(ring.next_key_id(), "mk2");

        write("# only comments\n\n");
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("holds no master key"), "{err}");

        write(&format!("{}\n{}\n", entry("mk1", 1), entry("mk1", 2)));
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("`mk1` appears more than once"), "{err}");

        let secretish = STANDARD.encode([9u8; 16]);
        write(&format!("# c\nmk1:{secretish}\n"));
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("16 bytes"), "{err}");
        assert!(!err.contains(&secretish), "{err}");

        let missing = Keyring::load_file(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(missing, KeyringError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
    }
}
