//! Tokens: who may connect, and as what.
//!
//! `<data>/tokens.toml` holds `[[token]]` tables with `role`, `secret`,
//! `name` (optional: see [`Tokens::open_or_create`]) and, for workers,
//! `worker`. On first start `serve` writes it with
//! an admin, a supervisor and an operator token (mode 0600).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use gridline_model::{Caller, Role};
use serde::{Deserialize, Serialize};

/// Unknown keys are refused: a misspelt `revokd = ...` would otherwise
/// leave a token the admin meant to withdraw working.
///
/// `Debug` shows the secret as `<redacted>`: a token logged or put in an
/// error by mistake does not give its secret away.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub role: String,
    /// Optional in the file (the contract's tables have `role`, `secret`
    /// and `worker`): a token without one is named when loaded, see
    /// [`Tokens::open_or_create`].
    #[serde(default)]
    pub name: String,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When `REVOKE` withdrew it (RFC 3339): it no longer authenticates,
    /// and stays in the file so that its name is never given to another
    /// token (the log names actors by it, and an operator sees the full
    /// phone numbers of the cases taken under their name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("role", &self.role)
            .field("name", &self.name)
            .field("secret", &REDACTED)
            .field("worker", &self.worker)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// Written in a secret's place by the `Debug` impls.
struct Redacted;

const REDACTED: Redacted = Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    #[serde(default)]
    pub token: Vec<Token>,
}

/// Why a token cannot be revoked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    #[error("no token has that name")]
    Unknown,
    #[error("already revoked at {0}")]
    Already(String),
    #[error("an admin token is withdrawn by editing tokens.toml with the server stopped")]
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot make a random secret: {0}")]
    Random(String),
}

/// The tokens the server accepts, and the file they live in. `Debug`
/// shows the file and the tokens without their secrets (`by_secret`'s keys
/// are the secrets: not shown at all).
pub struct Tokens {
    path: PathBuf,
    file: TokenFile,
    callers: Vec<Caller>,
    /// Each secret's token (secrets are unique, as are names).
    by_secret: HashMap<String, usize>,
    /// The line of each loaded token's `[[token]]`, for messages.
    lines: Vec<usize>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("path", &self.path)
            .field("tokens", &self.file.token)
            .finish_non_exhaustive()
    }
}

/// 128 random bits as 32 hex digits.
pub fn new_secret() -> Result<String, TokenError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Tokens {
    /// Loads `path`, or creates it with an admin, a supervisor and an operator.
    /// Returns whether it was created. A token the file gives no `name` is
    /// named as `TOKEN` would name it (see `name_unnamed`), and the file is
    /// written again with those names at once: a name given at each load
    /// could shift to another token after a hand edit (a new token taking
    /// `operator-2`), which would then see the first one's callers' phone
    /// numbers and share its request ids.
    pub fn open_or_create(path: &Path) -> Result<(Tokens, bool), TokenError> {
        let err = |m: String| TokenError::File { path: path.to_path_buf(), message: m };
        if path.exists() {
            tighten(path).map_err(|e| err(format!("cannot make it private (mode 0600): {e}")))?;
            let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
            let mut file = parse_token_file(&text).map_err(err)?;
            let named = name_unnamed(&mut file);
            let mut t = Tokens::empty(path);
            t.lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.split_whitespace().collect::<String>().starts_with("[[token]]"))
                .map(|(n, _)| n + 1)
                .collect();
            let mut names: HashMap<String, usize> = HashMap::new();
            // Revoked tokens' secrets too: given to another token, a
            // withdrawn secret would work again.
            let mut secrets: HashMap<String, usize> = HashMap::new();
            for (i, token) in file.token.into_iter().enumerate() {
                let which = t.which(i);
                let at = |m: String| err(format!("{which}: {m}"));
                // Names tell callers apart (in the log, and for operators'
                // unmasked phone numbers); a secret names one caller.
                if let Some(j) = names.insert(token.name.clone(), i) {
                    return Err(at(format!("name: `{}` is already token {}'s", token.name, j + 1)));
                }
                if let Some(j) = secrets.insert(token.secret.clone(), i) {
                    return Err(at(format!("secret: the same as token {}'s", j + 1)));
                }
                t.push(token).map_err(at)?;
            }
            // A server nobody can AUTH to would look as if it ran; an empty
            // file (a slip in an editor) is the likeliest way there.
            let active = |role: Option<&str>| {
                t.file.token.iter().any(|k| k.revoked.is_none() && role.is_none_or(|r| k.role == r))
            };
            if !active(None) {
                return Err(err(
                    "no token that is not revoked: nobody could AUTH; add one (docs/protocol.md, \"Sessions and \
                     roles\"), or move the file away for serve to write a new admin, supervisor and operator"
                        .into(),
                ));
            }
            if !active(Some("admin")) {
                tracing::warn!(
                    path = %path.display(),
                    "no admin token that is not revoked: TOKEN and REVOKE cannot be used until one is added to \
                     the file"
                );
            }
            if named {
                t.save()?;
                tracing::info!(path = %path.display(), "named the tokens the file gave no name");
            }
            return Ok((t, false));
        }
        let mut t = Tokens::empty(path);
        for role in ["admin", "supervisor", "operator"] {
            t.push(Token {
                role: role.into(),
                name: role.into(),
                secret: new_secret()?,
                worker: None,
                revoked: None,
            })
            .map_err(&err)?;
        }
        t.save()?;
        Ok((t, true))
    }

    /// Refuses a worker token whose worker `known` does not know (the
    /// registry's): it would let someone in as nobody's queue.
    pub fn check_workers(&self, known: impl Fn(&str) -> bool) -> Result<(), TokenError> {
        for (i, token) in self.file.token.iter().enumerate().filter(|(_, t)| t.revoked.is_none()) {
            if let Some(w) = token.worker.as_deref().filter(|w| !known(w)) {
                return Err(TokenError::File {
                    path: self.path.clone(),
                    message: format!(
                        "{} (`{}`): worker: `{w}` is not in the registry; remove the token or correct its worker",
                        self.which(i),
                        token.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// `line L, token N` (1-based), or `token N` where the line is unknown.
    fn which(&self, i: usize) -> String {
        match self.lines.get(i) {
            Some(l) => format!("line {l}, token {}", i + 1),
            None => format!("token {}", i + 1),
        }
    }

    fn empty(path: &Path) -> Tokens {
        Tokens {
            path: path.to_path_buf(),
            file: TokenFile::default(),
            callers: Vec::new(),
            by_secret: HashMap::new(),
            lines: Vec::new(),
        }
    }

    fn push(&mut self, token: Token) -> Result<(), String> {
        self.callers.push(caller_of(&token)?);
        if token.revoked.is_none() {
            self.by_secret.insert(token.secret.clone(), self.file.token.len());
        }
        self.file.token.push(token);
        Ok(())
    }

    /// Adds a token: rewrites the file durably (write, fsync, rename), then
    /// takes it in memory, so a token that could not be saved never works.
    pub fn add(&mut self, token: Token) -> Result<(), TokenError> {
        let file = self.with_added(&token)?;
        save(&self.path, &file)?;
        self.insert(token)
    }

    /// The token file as it would be with the token `name` revoked at
    /// `at`; nothing changes yet (see [`Tokens::with_added`]). Admin tokens
    /// are withdrawn by editing the file with the server stopped, so that
    /// no one can lock every admin out over the protocol.
    ///
    /// The token's secret is replaced by `scrambled`, a fresh one given to
    /// no one: a build from before `revoked` existed ignores that key, and
    /// would otherwise take the withdrawn secret again.
    pub fn with_revoked(&self, name: &str, at: &str, scrambled: &str) -> Result<TokenFile, RevokeError> {
        let i = self.file.token.iter().position(|t| t.name == name).ok_or(RevokeError::Unknown)?;
        let t = &self.file.token[i];
        if t.revoked.is_some() {
            return Err(RevokeError::Already(t.revoked.clone().unwrap_or_default()));
        }
        if t.role == Role::Admin.as_str() {
            return Err(RevokeError::Admin);
        }
        let mut file = self.file.clone();
        file.token[i].revoked = Some(at.to_string());
        file.token[i].secret = scrambled.to_string();
        Ok(file)
    }

    /// Revokes the token `name` in memory (after [`save`] of
    /// [`Tokens::with_revoked`]'s file).
    pub fn revoke(&mut self, name: &str, at: &str, scrambled: &str) {
        if let Some(t) = self.file.token.iter_mut().find(|t| t.name == name) {
            self.by_secret.remove(&t.secret);
            t.revoked = Some(at.to_string());
            t.secret = scrambled.to_string();
        }
    }

    /// Whether the token `name` exists and is not revoked.
    pub fn is_active(&self, name: &str) -> bool {
        self.file.token.iter().any(|t| t.name == name && t.revoked.is_none())
    }

    /// Whether a token already has `name` (a revoked one still does).
    pub fn name_taken(&self, name: &str) -> bool {
        self.file.token.iter().any(|t| t.name == name)
    }

    /// A token's name that differs from `name` only in letter case
    /// (`ADMIN` beside `admin`), which `TOKEN` refuses: in the log the two
    /// would read as one actor.
    pub fn name_like(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.file.token.iter().map(|t| t.name.as_str()).find(|n| *n != name && n.to_lowercase() == lower)
    }

    /// `base` if no token has that name, else the first free `base-2`,
    /// `base-3`...
    pub fn fresh_name(&self, base: &str) -> String {
        if !self.name_taken(base) {
            return base.to_string();
        }
        (2..).map(|i| format!("{base}-{i}")).find(|n| !self.name_taken(n)).expect("a free name")
    }

    /// The token file as it would be with `token`, which is checked (its
    /// name must be new: names tell callers apart, in the log and for
    /// operators' unmasked phone numbers); nothing changes yet. With [`save`] and [`Tokens::insert`], for a caller that
    /// must not hold its lock on the tokens while the file is written.
    pub fn with_added(&self, token: &Token) -> Result<TokenFile, TokenError> {
        caller_of(token).map_err(|m| TokenError::File { path: self.path.clone(), message: m })?;
        if self.name_taken(&token.name) {
            return Err(TokenError::File {
                path: self.path.clone(),
                message: format!("name: `{}` is already another token's", token.name),
            });
        }
        let mut file = self.file.clone();
        file.token.push(token.clone());
        Ok(file)
    }

    /// Takes a token in memory (after [`save`]).
    pub fn insert(&mut self, token: Token) -> Result<(), TokenError> {
        self.push(token).map_err(|m| TokenError::File { path: self.path.clone(), message: m })
    }

    fn save(&self) -> Result<(), TokenError> {
        save(&self.path, &self.file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tokens(&self) -> &[Token] {
        &self.file.token
    }

    /// The caller a secret belongs to: one hash-map lookup, whatever the
    /// number of tokens (comparing every token in constant time made `AUTH`
    /// cost about 100 µs with the county's 2,494). The map hashes with
    /// SipHash under keys drawn at random per process, so a client cannot
    /// choose which stored secret its guess lands next to; the byte
    /// comparison that follows a hash match is with a secret it could not
    /// aim at, and timing it teaches nothing about any other.
    pub fn authenticate(&self, secret: &str) -> Option<Caller> {
        self.by_secret.get(secret).map(|&i| self.callers[i].clone())
    }
}

/// Names the tokens the file gives no `name` (or an empty one) as `TOKEN`
/// names a token issued without `name=`: the worker id, or the role; when
/// that is taken, the first free `-2`, `-3`... Names given in the file are
/// kept and never taken by an unnamed token, wherever it stands.
/// Returns whether it named any.
fn name_unnamed(file: &mut TokenFile) -> bool {
    let mut named = false;
    let mut taken: std::collections::HashSet<String> =
        file.token.iter().filter(|t| !t.name.is_empty()).map(|t| t.name.clone()).collect();
    for t in file.token.iter_mut().filter(|t| t.name.is_empty()) {
        let base = t.worker.clone().unwrap_or_else(|| t.role.clone());
        let name = std::iter::once(base.clone())
            .chain((2..).map(|i| format!("{base}-{i}")))
            .find(|n| !taken.contains(n))
            .expect("a free name");
        taken.insert(name.clone());
        t.name = name;
        named = true;
    }
    named
}

/// Writes `file` to `path` durably: a temporary file (mode 0600), fsync,
/// rename over the old one, fsync of the directory.
pub fn save(path: &Path, file: &TokenFile) -> Result<(), TokenError> {
    let err = |m: String| TokenError::File { path: path.to_path_buf(), message: m };
    let text = toml::to_string(file).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("toml.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(|e| err(format!("cannot write: {e}")))?;
        // `mode` applies only when the file is created: a left-over
        // temporary file keeps its own, so set it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("cannot write: {e}")))?;
        }
        f.write_all(b"# Gridline tokens: keep this file secret (mode 0600).\n")
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot replace: {e}")))?;
    // The rename is durable only once the directory is: until then a power
    // loss may bring the old file back (a revoked secret working again).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(format!("cannot sync its directory {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Parses a token file. A syntax or shape error names its line and column
/// and says what is wrong, without the line itself: toml's own message
/// quotes the line, which may be a `secret`, and errors go to logs.
pub fn parse_token_file(text: &str) -> Result<TokenFile, String> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let at = e.span().map(|s| {
            let before = text.get(..s.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        });
        let message = e.message().trim_end().replace('\n', "; ");
        format!("{}{message}", at.unwrap_or_default())
    })
}

/// Makes the token file readable and writable by its owner only (0600),
/// warning when it was not: it holds every secret.
fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(
                path = %path.display(),
                was = format!("{mode:04o}"),
                "the token file was not private; its mode is now 0600"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A token's name is one line of text: it is written into the token file
/// and into every event its holder causes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err("name: 1 to 64 characters, not only spaces, without control characters or line breaks \
                    (newlines, tabs, U+2028)"
            .into());
    }
    Ok(())
}

/// [`check_name`], and for a name `TOKEN` gives: events name actors by it,
/// so it must read as itself, not as another with a zero-width space in
/// it, or turned around by a direction override. (A token file written by
/// hand before 2026-11-28 may hold such a name: it is still served.)
pub fn check_new_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    if let Some(c) = name.chars().find(|&c| gridline_protocol::is_invisible(c)) {
        return Err(format!(
            "name: U+{:04X} draws nothing (a zero-width or direction character): a name must read as it is",
            c as u32
        ));
    }
    Ok(())
}

fn caller_of(t: &Token) -> Result<Caller, String> {
    let role = Role::parse(&t.role)
        .filter(|r| *r != Role::System)
        .ok_or_else(|| format!("role `{}` is not admin, supervisor, operator or worker", t.role))?;
    check_name(&t.name)?;
    if t.secret.len() < 16 {
        return Err("secret: shorter than 16 bytes".into());
    }
    // A pass phrase may have spaces; sixteen spaces are not one.
    if t.secret.trim().is_empty() {
        return Err("secret: only spaces".into());
    }
    match (role, &t.worker) {
        (Role::Worker, None) => Err("worker: required for role worker".into()),
        (Role::Worker, Some(_)) | (_, None) => {
            Ok(Caller { role, name: t.name.clone(), worker: t.worker.clone() })
        }
        (_, Some(_)) => Err("worker: only for role worker".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reloads_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let (mut t, created) = Tokens::open_or_create(&p).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let admin = t.tokens()[0].secret.clone();
        assert_eq!(t.authenticate(&admin).unwrap().role, Role::Admin);
        assert!(t.authenticate("nope").is_none());
        t.add(Token {
            role: "worker".into(),
            name: "w1".into(),
            secret: new_secret().unwrap(),
            worker: Some("W00001".into()),
            revoked: None,
        })
        .unwrap();
        let (t2, created) = Tokens::open_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(t2.tokens().len(), 4);
        let w = t2.authenticate(&t2.tokens()[3].secret).unwrap();
        assert_eq!(w.worker.as_deref(), Some("W00001"));
    }

    #[cfg(unix)]
    #[test]
    fn loading_makes_the_file_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        Tokens::open_or_create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (t, created) = Tokens::open_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(t.tokens().len(), 3);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // A left-over temporary file with a loose mode does not loosen the saved file.
        let tmp = p.with_extension("toml.tmp");
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        save(&p, &t.file).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    /// A token or the token set in a log line or an error (`{:?}`) shows
    /// no secret.
    #[test]
    fn debug_output_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _) = Tokens::open_or_create(&dir.path().join("tokens.toml")).unwrap();
        let secrets: Vec<String> = t.tokens().iter().map(|t| t.secret.clone()).collect();
        for text in [format!("{t:?}"), format!("{:?}", t.tokens()[0]), format!("{:#?}", t.file)] {
            assert!(text.contains("<redacted>") && text.contains("admin"), "{text}");
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "a secret in {text}");
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let (mut t, _) = Tokens::open_or_create(&dir.path().join("tokens.toml")).unwrap();
        assert_eq!(t.fresh_name("operator"), "operator-2");
        assert_eq!(t.fresh_name("op-7"), "op-7");
        let tok = |name: &str| Token {
            role: "operator".into(),
            name: name.into(),
            secret: new_secret().unwrap(),
            worker: None,
            revoked: None,
        };
        t.add(tok("operator-2")).unwrap();
        assert_eq!(t.fresh_name("operator"), "operator-3");
        assert!(t.add(tok("operator")).is_err(), "a duplicate name was taken");
        assert_eq!(t.tokens().len(), 4);
    }

    #[test]
    fn a_near_miss_is_refused_and_every_token_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let (mut t, _) = Tokens::open_or_create(&dir.path().join("tokens.toml")).unwrap();
        for i in 0..100 {
            t.add(Token {
                role: "worker".into(),
                name: format!("w{i}"),
                secret: new_secret().unwrap(),
                worker: Some(format!("W{i:05}")),
                revoked: None,
            })
            .unwrap();
        }
        for (i, tok) in t.tokens().iter().enumerate().skip(3) {
            let c = t.authenticate(&tok.secret).unwrap();
            assert_eq!(c.worker, Some(format!("W{:05}", i - 3)));
            let mut near = tok.secret.clone().into_bytes();
            let last = near.len() - 1;
            near[last] = if near[last] == b'0' { b'1' } else { b'0' };
            assert!(t.authenticate(std::str::from_utf8(&near).unwrap()).is_none());
            assert!(t.authenticate(&tok.secret[..last]).is_none());
        }
    }
    #[test]
    fn tokens_without_a_name_are_named_as_token_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        // The contract's shape: role, secret and, for workers, worker.
        let text = format!(
            "[[token]]\nrole = \"operator\"\nsecret = \"{}\"\n\n\
             [[token]]\nrole = \"operator\"\nsecret = \"{}\"\n\n\
             [[token]]\nrole = \"worker\"\nsecret = \"{}\"\nworker = \"W00007\"\n\n\
             [[token]]\nrole = \"supervisor\"\nname = \"operator-2\"\nsecret = \"{}\"\n",
            "a".repeat(32),
            "b".repeat(32),
            "c".repeat(32),
            "d".repeat(32)
        );
        std::fs::write(&p, text).unwrap();
        let (t, created) = Tokens::open_or_create(&p).unwrap();
        assert!(!created);
        let names: Vec<&str> = t.tokens().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["operator", "operator-3", "W00007", "operator-2"]);
        assert_eq!(t.authenticate(&"b".repeat(32)).unwrap().name, "operator-3");
        assert_eq!(t.authenticate(&"c".repeat(32)).unwrap().worker.as_deref(), Some("W00007"));
        // The names are written back at once, so a later hand edit cannot
        // shift them to other tokens.
        let saved = std::fs::read_to_string(&p).unwrap();
        assert!(saved.contains("name = \"operator-3\"") && saved.contains("name = \"W00007\""), "{saved}");
        let (again, _) = Tokens::open_or_create(&p).unwrap();
        assert_eq!(again.tokens(), t.tokens());
    }

    /// An empty file, or one whose every token is revoked, would start a
    /// server nobody can AUTH to: refused, naming the file and the way out.
    #[test]
    fn a_file_without_a_working_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let revoked = format!(
            "[[token]]\nrole = \"admin\"\nname = \"admin\"\nsecret = \"{}\"\nrevoked = \"2026-11-27T10:00:00+08:00\"\n",
            "a".repeat(32)
        );
        for text in ["", "\n# nothing yet\n", revoked.as_str()] {
            std::fs::write(&p, text).unwrap();
            let e = Tokens::open_or_create(&p).unwrap_err().to_string();
            assert!(e.contains("tokens.toml") && e.contains("no token that is not revoked"), "{e}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "the file is left as it was");
        }
        // Sixteen spaces are not a secret; a pass phrase with spaces is, and
        // so is a short one in Chinese, whose 16 bytes earlier builds took.
        for (secret, refused) in [
            (" ".repeat(16), Some("secret: only spaces")),
            ("short".into(), Some("secret: shorter than 16 bytes")),
            ("a pass phrase, long".into(), None),
            ("鸡东县网格中心".into(), None),
        ] {
            std::fs::write(
                &p,
                format!("[[token]]\nrole = \"operator\"\nname = \"op\"\nsecret = \"{secret}\"\n"),
            )
            .unwrap();
            match (Tokens::open_or_create(&p), refused) {
                (Ok(_), None) => {}
                (Err(e), Some(why)) => assert!(e.to_string().contains(why), "{secret:?}: {e}"),
                (r, _) => panic!("{secret:?}: {:?}", r.map(|_| ())),
            }
        }
    }

    #[test]
    fn a_misspelt_key_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let text = format!(
            "[[token]]\nrole = \"operator\"\nname = \"op\"\nsecret = \"{}\"\nrevokd = \"2026-11-27T10:00:00+08:00\"\n",
            "a".repeat(32)
        );
        std::fs::write(&p, text).unwrap();
        let e = Tokens::open_or_create(&p).unwrap_err().to_string();
        assert!(e.contains("revokd") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn a_hand_edited_file_with_a_repeated_name_or_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let tok = |role: &str, name: &str, secret: &str| {
            format!("[[token]]\nrole = \"{role}\"\nname = \"{name}\"\nsecret = \"{secret}\"\n")
        };
        // Two operators of one name see each other's callers' phone numbers.
        std::fs::write(&p, tok("operator", "op", &"a".repeat(32)) + &tok("operator", "op", &"b".repeat(32)))
            .unwrap();
        let e = Tokens::open_or_create(&p).unwrap_err().to_string();
        assert!(e.contains("line 5, token 2") && e.contains("name") && e.contains("`op`"), "{e}");
        // One secret, two roles: which one AUTH gives depends on the order.
        std::fs::write(&p, tok("admin", "a", &"c".repeat(32)) + &tok("operator", "o", &"c".repeat(32)))
            .unwrap();
        let e = Tokens::open_or_create(&p).unwrap_err().to_string();
        assert!(e.contains("token 2") && e.contains("secret"), "{e}");
    }

    /// A file that does not parse is reported by line and column, never by
    /// quoting the line: it may be a secret's, and errors go to logs.
    #[test]
    fn a_file_that_does_not_parse_is_reported_without_quoting_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let secret = "0123456789abcdef0123456789abcdef";
        for (bad, line) in [
            (format!("[[token]]\nrole = \"admin\"\nname = \"admin\"\nsecert = \"{secret}\"\n"), "line 4"),
            (format!("[[token]]\nrole = \"admin\"\nname = \"admin\"\nsecret = {secret}\n"), "line 4"),
            (format!("[[token]]\nrole = \"admin\"\nsecret = \"{secret}\"\nname = [\n"), "line 5"),
        ] {
            std::fs::write(&p, &bad).unwrap();
            let e = Tokens::open_or_create(&p).unwrap_err().to_string();
            assert!(!e.contains(secret) && !e.contains("0123456789"), "the secret leaked: {e}");
            assert!(e.contains(line) && e.contains("tokens.toml"), "{e}");
        }
    }

    /// A revoked token's secret given to another token would make the
    /// withdrawn secret work again: refused whichever of the two comes first.
    #[test]
    fn a_revoked_tokens_secret_given_to_another_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        let tok = |name: &str, revoked: bool| {
            let r = if revoked { "revoked = \"2026-11-27T10:00:00+08:00\"\n" } else { "" };
            format!("[[token]]\nrole = \"operator\"\nname = \"{name}\"\nsecret = \"{}\"\n{r}", "d".repeat(32))
        };
        for text in [tok("old", true) + &tok("new", false), tok("new", false) + &tok("old", true)] {
            std::fs::write(&p, &text).unwrap();
            let e = Tokens::open_or_create(&p).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("token 2") && e.contains("secret"), "{text}: {e}");
        }
    }
}
