//! Local users: a JSON file of usernames, argon2id password hashes and roles.
//!
//! The file is the source of truth and is small, so it is read at start, read again whenever
//! it has changed on disk (checked on each login and session use: `add-user`, or an edit,
//! applies without a restart), and rewritten whole (write to a temporary file, then rename)
//! when a user is added or removed. The last admin can be neither removed nor demoted, so the
//! control plane always has someone who can run it. On a first run with no file the admin
//! is bootstrapped: from `SCP_ADMIN_PASSWORD` when set, otherwise with a random password
//! that is returned once so the caller can print it; only its hash is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

/// The two roles. An admin can do everything a viewer can.
pub const VIEWER: &str = "viewer";
pub const ADMIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("users file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("users file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("password hashing: {0}")]
    Hash(String),
    /// The API keys file beside the users file could not be opened.
    #[error("{0}")]
    Keys(String),
    #[error("unknown role `{0}` (viewer or admin)")]
    Role(String),
    #[error("username must be 1-64 characters of letters, digits, `.`, `_` or `-`")]
    Username,
    #[error("password must be at least 8 characters")]
    WeakPassword,
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error("`{0}` is the last admin: add another admin first")]
    LastAdmin(String),
}

/// One user as stored in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

/// The users, by name, and where they are kept.
pub struct Users {
    path: PathBuf,
    users: BTreeMap<String, User>,
    /// The file as last read or written: a different one on disk means it changed.
    seen: Option<FileVersion>,
    /// Verified against when the username is unknown, so a miss costs what a hit costs and
    /// response times do not tell which usernames exist.
    decoy: String,
}

/// What [`Users::open`] did about the admin on this run.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The file already had users; nothing created.
    Existing,
    /// Created from the configured password.
    FromEnv(String),
    /// Created with this random password: print it once, it is not stored anywhere.
    Generated { username: String, password: String },
}

pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An argon2id PHC string for `password`, with a fresh random salt.
/// The one password rule: at least 8 characters.
pub fn check_password(password: &str) -> Result<(), UsersError> {
    if password.chars().count() < 8 {
        return Err(UsersError::WeakPassword);
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt_bytes =
        crate::token::random_bytes::<16>().map_err(|e| UsersError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// What a session remembers of the password it was opened with: a short digest of the
/// user's hash (which is salted, so a new password, even the same one again, gives a new
/// fingerprint). The hash itself stays in the users file.
pub fn fingerprint(password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::token::hex(&Sha256::digest(password_hash.as_bytes())[..8])
}

fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Roles as given (comma list), checked; `admin` implies `viewer`.
pub fn parse_roles(roles: &str) -> Result<Vec<String>, UsersError> {
    let mut out = vec![VIEWER.to_string()];
    for r in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        match r {
            VIEWER => {}
            ADMIN => out.push(ADMIN.to_string()),
            other => return Err(UsersError::Role(other.to_string())),
        }
    }
    Ok(out)
}

/// A user's hash (or, for an unknown name, the decoy's) and the user it lets in.
pub struct LoginCheck {
    hash: String,
    user: Option<User>,
}

impl LoginCheck {
    /// Argon2: tens of milliseconds of CPU, so never on an async worker.
    pub fn verify(self, password: &str) -> Option<User> {
        // Always one hash check, so a miss costs what a hit costs.
        let ok = verify_hash(&self.hash, password);
        self.user.filter(|_| ok)
    }
}

/// What tells one version of the file from another: a rewrite renames a new file into
/// place (a new inode), an edit in place changes the time or the length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

fn file_version(path: &Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileVersion {
        inode: m.ino(),
        modified: m.modified().ok(),
        len: m.len(),
    })
}

fn read_file(path: &Path) -> Result<Option<UsersFile>, UsersError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| UsersError::Parse {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UsersError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn by_name(file: UsersFile) -> BTreeMap<String, User> {
    file.users
        .into_iter()
        .map(|u| (u.username.clone(), u))
        .collect()
}

impl Users {
    /// Reads `path`; when it is missing or has no users, creates it with `admin_user` as the
    /// admin, its password from `admin_password` or made up.
    pub fn open(
        path: &Path,
        admin_user: &str,
        admin_password: &str,
    ) -> Result<(Users, Bootstrap), UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        };
        let seen = file_version(path);
        let file = read_file(path)?.unwrap_or_default();
        let mut users = Users {
            path: path.to_path_buf(),
            users: by_name(file),
            seen,
            decoy: hash_password("decoy password, never valid")?,
        };
        if !users.users.is_empty() {
            return Ok((users, Bootstrap::Existing));
        }
        let (password, how) = if admin_password.is_empty() {
            let password: String = crate::token::random_hex().map_err(io)?[..20].to_string();
            (
                password.clone(),
                Bootstrap::Generated {
                    username: admin_user.to_string(),
                    password,
                },
            )
        } else {
            (
                admin_password.to_string(),
                Bootstrap::FromEnv(admin_user.to_string()),
            )
        };
        users.add(admin_user, &password, "admin")?;
        Ok((users, how))
    }

    /// Adds (or replaces) a user and rewrites the file.
    /// `true` when an existing user got another password. Given their current password,
    /// a user keeps their hash: only the roles change, and so their sessions can stay.
    pub fn add(&mut self, username: &str, password: &str, roles: &str) -> Result<bool, UsersError> {
        if !valid_username(username) {
            return Err(UsersError::Username);
        }
        check_password(password)?;
        let (password_hash, new_password) = match self.users.get(username) {
            Some(old) if verify_hash(&old.password_hash, password) => {
                (old.password_hash.clone(), false)
            }
            Some(_) => (hash_password(password)?, true),
            None => (hash_password(password)?, false),
        };
        let user = User {
            username: username.to_string(),
            password_hash,
            roles: parse_roles(roles)?,
        };
        if !user.is_admin() {
            self.keep_an_admin(username)?;
        }
        self.users.insert(username.to_string(), user);
        self.save()?;
        Ok(new_password)
    }

    /// Replaces a user's password hash (made by [`hash_password`] beforehand, so that the
    /// slow part runs before whatever guards the users is taken) and rewrites the file.
    pub fn set_password_hash(&mut self, username: &str, hash: String) -> Result<(), UsersError> {
        let user = self
            .users
            .get_mut(username)
            .ok_or_else(|| UsersError::NoSuchUser(username.to_string()))?;
        user.password_hash = hash;
        self.save()
    }

    /// Removes a user and rewrites the file; their sessions end at their next request.
    pub fn remove(&mut self, username: &str) -> Result<(), UsersError> {
        if !self.users.contains_key(username) {
            return Err(UsersError::NoSuchUser(username.to_string()));
        }
        self.keep_an_admin(username)?;
        self.users.remove(username);
        self.save()
    }

    /// Refuses to let `username` stop being an admin when no other admin is left.
    fn keep_an_admin(&self, username: &str) -> Result<(), UsersError> {
        let was_admin = self.users.get(username).is_some_and(User::is_admin);
        let others = self
            .users
            .values()
            .any(|u| u.is_admin() && u.username != username);
        if was_admin && !others {
            return Err(UsersError::LastAdmin(username.to_string()));
        }
        Ok(())
    }

    /// Every user, by name.
    pub fn list(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Whether the file on disk is no longer the one last read or written.
    pub fn changed_on_disk(&self) -> bool {
        file_version(&self.path) != self.seen
    }

    /// Reads the file again. On an error (a missing file, half an edit) the users stay as
    /// they were, and this version of the file counts as seen, so that it is not retried on
    /// every request; the next change to the file is read again.
    pub fn reload(&mut self) -> Result<(), UsersError> {
        self.seen = file_version(&self.path);
        let file = read_file(&self.path)?.ok_or_else(|| UsersError::Io {
            path: self.path.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        self.users = by_name(file);
        Ok(())
    }

    fn save(&mut self) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = UsersFile {
            users: self.users.values().cloned().collect(),
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|source| UsersError::Parse {
            path: self.path.clone(),
            source,
        })?;
        let tmp = self.path.with_extension("json.tmp");
        write_private(&tmp, &body).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.seen = file_version(&self.path);
        Ok(())
    }

    /// The user when `password` is theirs. Unknown users cost one hash check too.
    pub fn verify(&self, username: &str, password: &str) -> Option<User> {
        self.login_check(username).verify(password)
    }

    /// What a login checks its password against, taken out of the users so that the slow
    /// hash check can run without holding whatever guards them.
    pub fn login_check(&self, username: &str) -> LoginCheck {
        match self.users.get(username) {
            Some(u) => LoginCheck {
                hash: u.password_hash.clone(),
                user: Some(u.clone()),
            },
            None => LoginCheck {
                hash: self.decoy.clone(),
                user: None,
            },
        }
    }

    pub fn get(&self, username: &str) -> Option<&User> {
        self.users.get(username)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// `tickwire-scp add-user`: adds a user to the configured users file (bootstrapping the
/// admin first when the file is new, as a server start would). `true` when an existing user
/// got another password (a password reset).
pub fn add_to_file(
    settings: &super::ScpSettings,
    username: &str,
    password: &str,
    roles: &str,
) -> Result<bool, UsersError> {
    let (mut users, boot) = Users::open(
        &settings.users_file(),
        &settings.admin_user,
        &settings.admin_password,
    )?;
    super::log_bootstrap(&boot, settings);
    users.add(username, password, roles)
}

/// Reads the configured users file, which must exist: removing or listing users never
/// bootstraps an admin.
fn open_existing(settings: &super::ScpSettings) -> Result<Users, UsersError> {
    let mut users = Users {
        path: settings.users_file(),
        users: BTreeMap::new(),
        seen: None,
        // No logins go through these users: no decoy hash to compute.
        decoy: String::new(),
    };
    users.reload()?;
    Ok(users)
}

/// `tickwire-scp remove-user`: removes a user from the configured users file.
pub fn remove_from_file(settings: &super::ScpSettings, username: &str) -> Result<(), UsersError> {
    open_existing(settings)?.remove(username)
}

/// `tickwire-scp list-users`: each user and their roles.
pub fn list_file(settings: &super::ScpSettings) -> Result<Vec<(String, Vec<String>)>, UsersError> {
    Ok(open_existing(settings)?
        .list()
        .map(|u| (u.username.clone(), u.roles.clone()))
        .collect())
}

/// Writes a file only its owner can read: it holds password hashes.
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tickwire-users-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("users.json")
    }

    #[test]
    fn first_run_generates_an_admin_once_and_verifies_passwords() {
        let path = temp_path("gen");
        let (users, boot) = Users::open(&path, "admin", "").unwrap();
        let Bootstrap::Generated { username, password } = boot else {
            panic!("expected a generated admin, got {boot:?}");
        };
        assert_eq!(username, "admin");
        assert!(users.verify("admin", &password).unwrap().is_admin());
        assert!(users.verify("admin", "wrong password").is_none());
        assert!(users.verify("nobody", &password).is_none());
        // The file holds a hash, never the password.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains(&password));
        // Second run: nothing generated, same users.
        let (again, boot) = Users::open(&path, "admin", "other-password").unwrap();
        assert_eq!(boot, Bootstrap::Existing);
        assert!(again.verify("admin", &password).is_some());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn admin_from_env_and_added_viewers() {
        let path = temp_path("env");
        let (mut users, boot) = Users::open(&path, "root", "correct horse").unwrap();
        assert_eq!(boot, Bootstrap::FromEnv("root".into()));
        users.add("alice", "alice-password", "viewer").unwrap();
        let alice = users.verify("alice", "alice-password").unwrap();
        assert_eq!(alice.roles, vec!["viewer"]);
        assert!(matches!(
            users.add("bob", "short", "viewer"),
            Err(UsersError::WeakPassword)
        ));
        assert!(matches!(
            users.add("bad name", "long enough", "viewer"),
            Err(UsersError::Username)
        ));
        assert!(matches!(
            users.add("carol", "long enough", "root"),
            Err(UsersError::Role(_))
        ));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn users_are_removed_but_never_the_last_admin() {
        let path = temp_path("remove");
        let (mut users, _) = Users::open(&path, "root", "correct horse").unwrap();
        users.add("alice", "alice-password", "viewer").unwrap();
        assert!(matches!(
            users.remove("root"),
            Err(UsersError::LastAdmin(_))
        ));
        assert!(matches!(
            users.add("root", "correct horse", "viewer"),
            Err(UsersError::LastAdmin(_))
        ));
        assert!(matches!(
            users.remove("nobody"),
            Err(UsersError::NoSuchUser(_))
        ));
        users.remove("alice").unwrap();
        users.add("bob", "bob-password", "admin").unwrap();
        users.remove("root").unwrap();
        // What the file now holds, read as `list-users` reads it.
        let (again, _) = Users::open(&path, "root", "correct horse").unwrap();
        let names: Vec<&str> = again.list().map(|u| u.username.as_str()).collect();
        assert_eq!(names, vec!["bob"]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
