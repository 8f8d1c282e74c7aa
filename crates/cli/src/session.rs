//! The per-user session file: bearer tokens kept between `bank` invocations, one per target URL.
//!
//! The file is JSON (`{ "sessions": { "<target>": { token, ... } } }`), readable only by its
//! owner (mode 0600, in a 0700 directory when the directory is created here), and replaced
//! atomically (write a temporary file, then rename), so a crash never leaves half a file and a
//! token is never readable by others even for a moment. Concurrent `bank login`s to different
//! targets may race; the last writer wins (acceptable for a per-user convenience file).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest session file read, in bytes: a token per target is a few hundred bytes.
const SESSION_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// One stored session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    pub token: String,
    pub expires_at: String,
    pub email: String,
    pub bank_id: u32,
    pub bank_name: String,
    pub number: String,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("email", &self.email)
            .field("bank_id", &self.bank_id)
            .field("number", &self.number)
            .finish()
    }
}

/// The whole file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    #[serde(default)]
    pub sessions: BTreeMap<String, StoredSession>,
}

/// The session file at a path.
#[derive(Debug, Clone)]
pub struct SessionStore {
    path: PathBuf,
}

impl SessionStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SessionStore { path: path.into() }
    }

    /// `--session-file` / `$BANK_SESSION_FILE` when given, else `<config dir>/bank/sessions.json`.
    pub fn from_option(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(path) => Ok(Self::new(path)),
            None => {
                let dir =
                    dirs::config_dir().context("no configuration directory for this user; set BANK_SESSION_FILE")?;
                Ok(Self::new(dir.join("bank").join("sessions.json")))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing file is an empty one.
    pub fn load(&self) -> Result<Sessions> {
        let file = match fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Sessions::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, SESSION_FILE_BYTES_MAX), &mut text)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a session file", self.path.display()))
    }

    /// Replaces the file atomically with `sessions`, readable by its owner only.
    pub fn save(&self, sessions: &Sessions) -> Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file_name = self.path.file_name().context("the session file path has no file name")?;
        let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            let text = serde_json::to_string_pretty(sessions).map_err(std::io::Error::other)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write()
            .inspect_err(|_| drop(fs::remove_file(&tmp)))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The session kept for `target`, if any.
    pub fn get(&self, target: &str) -> Result<Option<StoredSession>> {
        Ok(self.load()?.sessions.remove(&target_key(target)))
    }

    /// Keeps `session` for `target`, replacing any previous one.
    pub fn put(&self, target: &str, session: StoredSession) -> Result<()> {
        let mut all = self.load()?;
        all.sessions.insert(target_key(target), session);
        self.save(&all)
    }

    /// Forgets the session of `target`; returns whether there was one.
    pub fn remove(&self, target: &str) -> Result<bool> {
        let mut all = self.load()?;
        let removed = all.sessions.remove(&target_key(target)).is_some();
        if removed {
            self.save(&all)?;
        }
        Ok(removed)
    }
}

/// The key under which a target's session is kept: the URL without trailing slashes, so that
/// `http://h:1` and `http://h:1/` share a session.
pub fn target_key(target: &str) -> String {
    target.trim().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn session(token: &str) -> StoredSession {
        StoredSession {
            token: token.into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
            email: "ana@example.com".into(),
            bank_id: 1,
            bank_name: "Eleven".into(),
            number: "000001-4".into(),
        }
    }

    #[test]
    fn round_trip_per_target_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SessionStore::new(dir.path().join("nested").join("sessions.json"));
        assert_eq!(store.get("http://127.0.0.1:8081").expect("get"), None, "missing file is empty");

        store.put("http://127.0.0.1:8081/", session("one")).expect("put");
        store.put("http://127.0.0.1:8082", session("two")).expect("put");
        assert_eq!(store.get("http://127.0.0.1:8081").expect("get").map(|s| s.token), Some("one".into()));
        assert_eq!(store.get("http://127.0.0.1:8082/").expect("get").map(|s| s.token), Some("two".into()));

        let mode = fs::metadata(store.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(store.path().parent().expect("dir")).expect("meta").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        assert!(store.remove("http://127.0.0.1:8081").expect("remove"));
        assert!(!store.remove("http://127.0.0.1:8081").expect("remove again"));
        assert_eq!(store.get("http://127.0.0.1:8081").expect("get"), None);
        assert!(store.get("http://127.0.0.1:8082").expect("get").is_some(), "other targets are kept");
        let leftovers: Vec<_> = fs::read_dir(store.path().parent().expect("dir"))
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left behind");
    }

    #[test]
    fn looser_existing_file_is_replaced_by_a_private_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.json");
        fs::write(&path, "{}").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let store = SessionStore::new(&path);
        store.put("http://x:1", session("t")).expect("put");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_silent_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessions.json");
        fs::write(&path, "not json").expect("write");
        assert!(SessionStore::new(&path).load().is_err());
    }

    #[test]
    fn token_is_not_in_debug_output() {
        assert!(!format!("{:?}", session("sekret")).contains("sekret"));
    }
}
