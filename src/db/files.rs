//! File modes: the data directory is created 0700 and every file tenantry writes into it
//! (database, WAL, SHM, lock, backups, exports) is 0600, whatever the umask. Modes are set
//! explicitly here; `main` also sets the umask to 0077 for what SQLite creates on its own.
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Creates `dir` (and missing parents) 0700; an existing directory is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))
}

/// Options for a file only its owner may read: created 0600.
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `path` empty and 0600 unless it exists; returns whether it was created.
pub fn create_private_file(path: &Path) -> Result<bool, String> {
    match private_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Sets an existing file to 0600 (files written by older versions, or copied with their
/// source's mode); a missing file is not an error.
pub fn make_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot set the mode of {}: {e}", path.display())),
        }
    }
    let _ = path;
    Ok(())
}

/// The database file and the two SQLite keeps beside it.
pub fn make_database_private(db: &Path) -> Result<(), String> {
    make_private(db)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        make_private(Path::new(&p))?;
    }
    Ok(())
}

/// An open file's identity, to tell whether a path still names it.
pub fn same_file(f: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (f.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (f, path);
        true
    }
}
