//! Files only their owner may read: the stores and secrets hold password
//! hashes and signing keys.

use std::path::{Path, PathBuf};

/// Makes a directory (and its parents) only its owner can enter: the stores
/// hold password hashes. Directories that exist are left as they are.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes a store's file (and its directory) readable by its owner alone
/// before SQLite opens it; SQLite gives its `-wal` and `-shm` files the
/// database file's permissions. A file made earlier with wider ones is
/// narrowed, with the journal files beside it.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::metadata(&file) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn store_files_and_their_directories_are_the_owners_alone() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data/nested/events.sqlite");
        private_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("data")), 0o700);
        assert_eq!(mode(&root.path().join("data/nested")), 0o700);

        // Files made before, world-readable, are narrowed with their journals.
        let old = root.path().join("read.sqlite");
        let wal = root.path().join("read.sqlite-wal");
        for f in [&old, &wal] {
            std::fs::write(f, b"").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        private_file(&old).unwrap();
        assert_eq!((mode(&old), mode(&wal)), (0o600, 0o600));
    }
}
