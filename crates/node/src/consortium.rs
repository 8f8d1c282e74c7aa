//! The consortium file: who the member banks are, where they listen and which keys they sign
//! with, plus the operator's key; and this node's own key.
//!
//! The file is TOML, shared by every bank of the consortium (each bank reads the same file and
//! finds itself in it by its id):
//!
//! ```toml
//! [operator]
//! public_key = "<base64 of the operator's 32-byte Ed25519 public key>"
//!
//! [[members]]
//! id = 1
//! name = "Eleven"
//! url = "http://127.0.0.1:8081"
//! public_key = "<base64 of bank 1's Ed25519 public key>"
//! institution_code = "90000001"   # 8 digits, like an ISPB: the start of its Pix end-to-end ids
//!
//! # Optional: the token ring's timing (DESIGN.md §5), the same for every bank since every bank
//! # reads this file. Defaults as shown; a wide-area consortium needs a longer hop timeout.
//! [ring]
//! hop_timeout_ms = 80    # a pass unacknowledged this long is given up (regeneration replaces it)
//! lease_ms = 60          # the longest a holder may start work after taking the token
//! clock_skew_ms = 20     # how far apart the banks' clocks may be (ring messages older than
//!                        # hop_timeout_ms - clock_skew_ms by the sender's clock are dropped)
//!
//! # Optional: this node's own settings. Flags and environment variables override them.
//! [node]
//! id = 1
//! signing_key_file = "keys/bank-1.key"   # relative paths are relative to this file
//! listen = "0.0.0.0:8081"
//! data = "data/bank-1"
//! ```
//!
//! Parsing validates everything before anything uses it (STYLE.md 11): unknown fields (a typo),
//! no members, more than [`MEMBERS_MAX`] members, an id of 0, duplicate ids, URLs or public keys,
//! a URL that is not a bare `http(s)://host:port` origin, a key that is not base64 of a valid
//! Ed25519 point, and an operator key equal to a bank's key are all refused with a message that
//! names the member and the field. So are an institution code that is not 8 digits and one
//! listed twice; a member without one (a file from before codes existed) gets
//! [`InstitutionCode::derived`] from its id, and `bank up` / `bank consortium add` write it out.
//!
//! A bank's **secret** key never appears in the consortium file: it lives in a file of its own
//! holding the base64 of the 32-byte Ed25519 seed, readable only by its owner (mode 0600; a key
//! file that other users may read is refused, as ssh does). [`Consortium::new`] checks that the
//! secret key matches the public key the file lists for this bank, so a mixed-up key file fails
//! at start, not at the first signed request.
//!
//! Not handled here: changing the membership of a running consortium (every bank must be
//! restarted with the new file), key rotation, and TLS (URLs may say `https`, but the peer client
//! is built without a TLS stack; see STACK.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bank_core::ids::{BankId, InstitutionCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Most members a consortium file may list (bounds every per-member table of a node).
pub const MEMBERS_MAX: usize = 64;
/// Longest bank name, in characters.
pub const NAME_LEN_MAX: usize = 64;
/// Largest consortium file or key file read, in bytes (a larger one is certainly a mistake).
pub const FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Why a consortium file or key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A problem found in text that did not come from a file (see [`ConsortiumConfig::parse`]).
    #[error("{0}")]
    Text(String),
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// One member bank as the consortium file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: BankId,
    pub name: String,
    /// Base URL, normalised to its origin (`http://host:port`, no trailing slash).
    pub url: String,
    pub public_key: VerifyingKey,
}

/// The `[node]` table: this node's own settings, each optional (flags and environment variables
/// override them; see `bank node --help`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSettings {
    pub id: Option<BankId>,
    pub signing_key_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    /// Serve the seed-compatible API (`seed_compat = true`; unauthenticated, see
    /// docs/seed-compat.md). Off when absent; `--seed-compat` turns it on too.
    pub seed_compat: bool,
}

/// The `[ring]` table: the token ring's timing, in milliseconds (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingTiming {
    #[serde(default = "RingTiming::default_hop_timeout_ms")]
    pub hop_timeout_ms: u64,
    #[serde(default = "RingTiming::default_lease_ms")]
    pub lease_ms: u64,
    #[serde(default = "RingTiming::default_clock_skew_ms")]
    pub clock_skew_ms: u64,
}

impl RingTiming {
    // Chosen from ring timings measured under load on one machine (five banks; see
    // docs/architecture.md): a 60 ms age limit sits above 99.6 % of ring messages, the lease
    // leaves an idle visit four ticks of slack for a late tick, and a lost token is noticed
    // after 1.04 s at five banks. A wide-area consortium sets its own.
    fn default_hop_timeout_ms() -> u64 {
        80
    }
    fn default_lease_ms() -> u64 {
        60
    }
    fn default_clock_skew_ms() -> u64 {
        20
    }

    /// Refuses timings the ring cannot keep: a hop timeout outside 30 ms (three 10 ms ticks) to
    /// 60 s, a lease outside 10 ms to 10 min, a clock skew over half the hop timeout.
    pub fn validate(&self) -> Result<(), String> {
        if !(30..=60_000).contains(&self.hop_timeout_ms) {
            return Err(format!("hop_timeout_ms is {}; it must be 30 to 60000", self.hop_timeout_ms));
        }
        if !(10..=600_000).contains(&self.lease_ms) {
            return Err(format!("lease_ms is {}; it must be 10 to 600000", self.lease_ms));
        }
        if self.clock_skew_ms * 2 > self.hop_timeout_ms {
            return Err(format!(
                "clock_skew_ms is {}; it must be at most half of hop_timeout_ms ({}), or too little of the hop \
                 timeout is left for a message to arrive",
                self.clock_skew_ms, self.hop_timeout_ms
            ));
        }
        Ok(())
    }
}

impl Default for RingTiming {
    fn default() -> Self {
        RingTiming {
            hop_timeout_ms: Self::default_hop_timeout_ms(),
            lease_ms: Self::default_lease_ms(),
            clock_skew_ms: Self::default_clock_skew_ms(),
        }
    }
}

/// A parsed and validated consortium file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsortiumConfig {
    pub operator_key: VerifyingKey,
    /// Sorted by id (STYLE.md 6: deterministic iteration).
    pub members: BTreeMap<BankId, Member>,
    pub ring: RingTiming,
    pub node: NodeSettings,
    /// Each member's institution code as the file gives it; a member missing here has its
    /// derived one (see [`ConsortiumConfig::institution_code`]).
    pub institution_codes: BTreeMap<BankId, InstitutionCode>,
}

/// What a node needs to take part in a consortium: the members, the operator's key and its own
/// signing key (checked against its member entry).
#[derive(Debug, Clone)]
pub struct Consortium {
    pub members: BTreeMap<BankId, Member>,
    pub operator_key: VerifyingKey,
    pub signing_key: SigningKey,
    /// Every member's institution code (given or derived).
    pub institution_codes: BTreeMap<BankId, InstitutionCode>,
}

impl Consortium {
    /// Joins `config` as bank `self_id` with `signing_key`. Refused when the bank is not a
    /// member or its key is not the one the file lists for it.
    pub fn new(config: &ConsortiumConfig, self_id: BankId, signing_key: SigningKey) -> Result<Consortium, ConfigError> {
        let member = config.members.get(&self_id).ok_or_else(|| {
            let ids: Vec<String> = config.members.keys().map(ToString::to_string).collect();
            ConfigError::Text(format!(
                "bank {self_id} is not a member of the consortium (its members are {})",
                ids.join(", ")
            ))
        })?;
        if member.public_key != signing_key.verifying_key() {
            return Err(ConfigError::Text(format!(
                "the signing key given for bank {self_id} ({}) does not match the public key the consortium file lists \
                 for it; is it another bank's key file?",
                member.name
            )));
        }
        let institution_codes = config.members.keys().map(|&id| (id, config.institution_code(id))).collect();
        Ok(Consortium {
            members: config.members.clone(),
            operator_key: config.operator_key,
            signing_key,
            institution_codes,
        })
    }
}

// ---- The file format (serde) ----

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    operator: RawOperator,
    #[serde(default)]
    members: Vec<RawMember>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ring: Option<RingTiming>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<RawNode>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    public_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: u32,
    name: String,
    url: String,
    public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    institution_code: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed_compat: Option<bool>,
}

impl ConsortiumConfig {
    /// Reads and validates the file at `path`; relative paths in its `[node]` table are taken
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<ConsortiumConfig, ConfigError> {
        let text = read_bounded(path)?;
        let mut config = ConsortiumConfig::parse(&text)
            .map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [&mut config.node.signing_key_file, &mut config.node.data].into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses and validates the text of a consortium file; the error is a sentence naming the
    /// member and field at fault.
    pub fn parse(text: &str) -> Result<ConsortiumConfig, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| format!("not a valid consortium file: {e}"))?;
        let operator_key =
            parse_public_key(&raw.operator.public_key).map_err(|e| format!("[operator] public_key: {e}"))?;
        if raw.members.is_empty() {
            return Err("the consortium file lists no members (add [[members]] tables)".into());
        }
        if raw.members.len() > MEMBERS_MAX {
            return Err(format!("the consortium file lists {} members; at most {MEMBERS_MAX}", raw.members.len()));
        }
        let mut members = BTreeMap::new();
        let mut urls = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let mut institution_codes = BTreeMap::new();
        let mut codes_seen = BTreeMap::new();
        for (index, m) in raw.members.iter().enumerate() {
            let at = format!("member #{} (id {}, {:?})", index + 1, m.id, m.name);
            if m.id == 0 {
                return Err(format!("{at}: ids start at 1"));
            }
            let id = BankId(m.id);
            let name = m.name.trim();
            if name.is_empty() || name.chars().count() > NAME_LEN_MAX || name.chars().any(char::is_control) {
                return Err(format!("{at}: name must be 1 to {NAME_LEN_MAX} printable characters"));
            }
            let url = normalize_url(&m.url).map_err(|e| format!("{at}: url {:?}: {e}", m.url))?;
            let public_key = parse_public_key(&m.public_key).map_err(|e| format!("{at}: public_key: {e}"))?;
            if let Some(other) = urls.insert(url.clone(), id) {
                return Err(format!("{at}: url {url} is also bank {other}'s"));
            }
            if let Some(other) = keys.insert(public_key.to_bytes(), id) {
                return Err(format!("{at}: public_key is also bank {other}'s; every bank needs its own key"));
            }
            let code = match &m.institution_code {
                Some(text) => InstitutionCode::parse(text).map_err(|e| format!("{at}: institution_code: {e}"))?,
                None => InstitutionCode::derived(id),
            };
            let member = Member { id, name: name.to_string(), url, public_key };
            if members.insert(id, member).is_some() {
                return Err(format!("{at}: id {id} is listed twice"));
            }
            if let Some(other) = codes_seen.insert(code.clone(), id) {
                return Err(format!("{at}: institution_code {code} is also bank {other}'s"));
            }
            if m.institution_code.is_some() {
                institution_codes.insert(id, code);
            }
        }
        if let Some(bank) = keys.get(&operator_key.to_bytes()) {
            return Err(format!("[operator] public_key is bank {bank}'s key; the operator needs a key of its own"));
        }
        let ring = raw.ring.unwrap_or_default();
        ring.validate().map_err(|e| format!("[ring] {e}"))?;
        let raw_node = raw.node.unwrap_or_default();
        let node = NodeSettings {
            id: raw_node.id.map(BankId),
            signing_key_file: raw_node.signing_key_file,
            listen: raw_node.listen,
            data: raw_node.data,
            seed_compat: raw_node.seed_compat.unwrap_or(false),
        };
        Ok(ConsortiumConfig { operator_key, members, ring, node, institution_codes })
    }

    /// The text of a consortium being assembled: the operator's public key and no members yet
    /// (`bank consortium init`). A node refuses to start with it until members are added.
    pub fn draft(operator_key: &VerifyingKey) -> String {
        let raw = RawFile {
            operator: RawOperator { public_key: encode_public_key(operator_key) },
            members: Vec::new(),
            ring: None,
            node: None,
        };
        toml::to_string(&raw).expect("a consortium file serialises")
    }

    /// `text` (a draft or a whole consortium file) with one more member (`bank consortium add`).
    /// The result is validated as a whole, so a duplicate id, URL or key, or a bad field, is
    /// refused with the sentence [`ConsortiumConfig::parse`] gives, and nothing is written.
    pub fn add_member(text: &str, member: &Member) -> Result<String, String> {
        let mut raw: RawFile = toml::from_str(text).map_err(|e| format!("not a valid consortium file: {e}"))?;
        raw.members.push(RawMember {
            id: member.id.0,
            name: member.name.clone(),
            url: member.url.clone(),
            public_key: encode_public_key(&member.public_key),
            institution_code: Some(InstitutionCode::derived(member.id).to_string()),
        });
        let text = toml::to_string(&raw).expect("a consortium file serialises");
        ConsortiumConfig::parse(&text)?;
        Ok(text)
    }

    /// The file's text (what [`ConsortiumConfig::parse`] reads back to an equal value).
    pub fn to_toml(&self) -> String {
        let node = &self.node;
        let raw = RawFile {
            operator: RawOperator { public_key: encode_public_key(&self.operator_key) },
            members: self
                .members
                .values()
                .map(|m| RawMember {
                    id: m.id.0,
                    name: m.name.clone(),
                    url: m.url.clone(),
                    public_key: encode_public_key(&m.public_key),
                    institution_code: self.institution_codes.get(&m.id).map(ToString::to_string),
                })
                .collect(),
            ring: (self.ring != RingTiming::default()).then_some(self.ring),
            node: (*node != NodeSettings::default()).then(|| RawNode {
                id: node.id.map(|id| id.0),
                signing_key_file: node.signing_key_file.clone(),
                listen: node.listen,
                data: node.data.clone(),
                seed_compat: node.seed_compat.then_some(true),
            }),
        };
        // Serialising plain strings, integers and tables cannot fail.
        toml::to_string(&raw).expect("a consortium file serialises")
    }

    /// Bank `id`'s institution code: the file's, or the one derived from its id.
    pub fn institution_code(&self, id: BankId) -> InstitutionCode {
        self.institution_codes.get(&id).cloned().unwrap_or_else(|| InstitutionCode::derived(id))
    }

    /// Gives every member without one its derived institution code, so the file written next
    /// names every code (`bank up`).
    pub fn assign_institution_codes(&mut self) {
        for &id in self.members.keys() {
            self.institution_codes.entry(id).or_insert_with(|| InstitutionCode::derived(id));
        }
    }

    /// The address bank `id` listens on when nothing else says: its URL's port, on the URL's IP
    /// (or 127.0.0.1 for `localhost`), or on every interface when the URL names a host (as in a
    /// container network, where the name resolves to this machine's address).
    pub fn default_listen(&self, id: BankId) -> Option<SocketAddr> {
        let url = reqwest::Url::parse(&self.members.get(&id)?.url).ok()?;
        let port = url.port_or_known_default()?;
        let host = url.host_str()?;
        let ip = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if host == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// `http(s)://host[:port]` with nothing after the origin but an optional `/`; returns the origin.
fn normalize_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("a host is needed".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in a member URL".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("give only the origin (scheme, host and port): the API paths are fixed".into());
    }
    Ok(url.origin().ascii_serialization())
}

// ---- Keys ----

/// Base64 (standard, padded) of a public key: 44 characters.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// Base64 of a secret key's 32-byte seed.
pub fn encode_signing_key(key: &SigningKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// A public key from its base64; refuses anything but 32 bytes that encode a curve point.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = decode_32(text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// A secret key from the base64 of its 32-byte seed.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    decode_32(text).map(|seed| SigningKey::from_bytes(&seed))
}

fn decode_32(text: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64.decode(text.trim()).map_err(|_| "not base64".to_string())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("base64 of 32 bytes expected, this decodes to {} bytes", bytes.len()))
}

/// A fresh signing key from the operating system's randomness.
pub fn generate_signing_key() -> Result<SigningKey, ConfigError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ConfigError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A fresh key pair as `(secret_base64, public_base64)`.
pub fn generate_keypair() -> Result<(String, String), ConfigError> {
    let key = generate_signing_key()?;
    Ok((encode_signing_key(&key), encode_public_key(&key.verifying_key())))
}

/// The public-key file that goes beside a secret key file: `bank-1.key` → `bank-1.pub`.
pub fn public_key_path(secret_path: &Path) -> PathBuf {
    secret_path.with_extension("pub")
}

/// Writes `key` to a new file at `path` with mode 0600 (never overwriting one: a lost key means
/// a bank the others no longer recognise), and its public key beside it (see
/// [`public_key_path`]).
pub fn write_key_files(path: &Path, key: &SigningKey) -> Result<(), ConfigError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |path: &Path, text: String, mode: u32| -> Result<(), ConfigError> {
        let failed = |source| ConfigError::Write { path: path.to_path_buf(), source };
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(failed)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(failed)
    };
    write(path, format!("{}\n", encode_signing_key(key)), 0o600)?;
    write(&public_key_path(path), format!("{}\n", encode_public_key(&key.verifying_key())), 0o644)
}

/// Reads a secret key file; refuses one that other users can read or write.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "a secret key file must be private (mode 0600), this one has mode {mode:04o}; run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    let text = read_bounded(path)?;
    parse_signing_key(&text).map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e })
}

/// Reads a public key file (base64 of 32 bytes).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, ConfigError> {
    let text = read_bounded(path)?;
    parse_public_key(&text).map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e })
}

fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    let failed = |source| ConfigError::Read { path: path.to_path_buf(), source };
    let metadata = std::fs::metadata(path).map_err(failed)?;
    if metadata.len() > FILE_BYTES_MAX {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("{} bytes; at most {FILE_BYTES_MAX}", metadata.len()),
        });
    }
    std::fs::read_to_string(path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public(seed: u8) -> String {
        encode_public_key(&key(seed).verifying_key())
    }

    /// `(id, name, url, public_key)` of a `[[members]]` table.
    type Row = (u32, &'static str, &'static str, String);

    fn file(members: &[Row]) -> String {
        let mut text = format!("[operator]\npublic_key = \"{}\"\n", public(100));
        for (id, name, url, key) in members {
            text.push_str(&format!(
                "\n[[members]]\nid = {id}\nname = \"{name}\"\nurl = \"{url}\"\npublic_key = \"{key}\"\n"
            ));
        }
        text
    }

    fn two() -> Vec<Row> {
        vec![(1, "Eleven", "http://127.0.0.1:8081", public(1)), (2, "Automobili", "http://127.0.0.1:8082/", public(2))]
    }

    #[test]
    fn the_ring_table_is_optional_validated_and_round_trips() {
        let config = ConsortiumConfig::parse(&file(&two())).expect("valid");
        assert_eq!(config.ring, RingTiming::default());
        assert!(!config.to_toml().contains("[ring]"), "defaults are not written out");
        let text = format!("{}\n[ring]\nhop_timeout_ms = 1000\nlease_ms = 2000\n", file(&two()));
        let config = ConsortiumConfig::parse(&text).expect("valid");
        assert_eq!(config.ring, RingTiming { hop_timeout_ms: 1_000, lease_ms: 2_000, clock_skew_ms: 20 });
        assert_eq!(ConsortiumConfig::parse(&config.to_toml()).expect("round trip"), config);
        for (table, needle) in [
            ("hop_timeout_ms = 10", "hop_timeout_ms is 10"),
            ("lease_ms = 0", "lease_ms is 0"),
            ("clock_skew_ms = 100", "clock_skew_ms is 100"),
            ("hop_timeout = 100", "unknown field"),
        ] {
            let err = ConsortiumConfig::parse(&format!("{}\n[ring]\n{table}\n", file(&two()))).expect_err(table);
            assert!(err.contains(needle), "{table}: {err}");
        }
    }

    #[test]
    fn a_valid_file_parses_and_round_trips() {
        let config = ConsortiumConfig::parse(&file(&two())).expect("valid");
        assert_eq!(config.members.len(), 2);
        let second = &config.members[&BankId(2)];
        assert_eq!((second.name.as_str(), second.url.as_str()), ("Automobili", "http://127.0.0.1:8082"));
        assert_eq!(config.operator_key, key(100).verifying_key());
        assert_eq!(config.node, NodeSettings::default());
        assert_eq!(ConsortiumConfig::parse(&config.to_toml()).expect("round trip"), config);
    }

    #[test]
    fn the_node_table_is_optional_and_round_trips() {
        let text = format!(
            "{}\n[node]\nid = 2\nsigning_key_file = \"keys/bank-2.key\"\nlisten = \"0.0.0.0:9000\"\ndata = \"d\"\n",
            file(&two())
        );
        let config = ConsortiumConfig::parse(&text).expect("valid");
        assert_eq!(config.node.id, Some(BankId(2)));
        assert_eq!(config.node.listen, Some("0.0.0.0:9000".parse().expect("addr")));
        assert_eq!(config.node.signing_key_file.as_deref(), Some(Path::new("keys/bank-2.key")));
        assert_eq!(ConsortiumConfig::parse(&config.to_toml()).expect("round trip"), config);
    }

    #[test]
    fn the_seed_compatible_api_is_off_unless_the_node_table_turns_it_on() {
        let off = ConsortiumConfig::parse(&file(&two())).expect("valid");
        assert!(!off.node.seed_compat);
        let on = ConsortiumConfig::parse(&format!("{}\n[node]\nseed_compat = true\n", file(&two()))).expect("valid");
        assert!(on.node.seed_compat);
        assert_eq!(ConsortiumConfig::parse(&on.to_toml()).expect("round trip"), on);
        assert!(ConsortiumConfig::parse(&format!("{}\n[node]\nseed_compat = \"yes\"\n", file(&two()))).is_err());
    }

    #[test]
    fn invalid_files_are_refused_with_the_reason() {
        let mut cases: Vec<(String, &str)> = vec![
            (file(&[]), "no members"),
            ("[operator]\npublic_key = \"x\"\n".into(), "[operator] public_key: not base64"),
            (format!("{}\n[extra]\n", file(&two())), "unknown field"),
        ];
        let mut edit = |f: &dyn Fn(&mut Vec<Row>), expected: &'static str| {
            let mut members = two();
            f(&mut members);
            cases.push((file(&members), expected));
        };
        edit(&|m| m[1].0 = 1, "listed twice");
        edit(&|m| m[1].0 = 0, "ids start at 1");
        edit(&|m| m[1].2 = "http://127.0.0.1:8081/", "also bank 1's");
        edit(&|m| m[1].3 = public(1), "every bank needs its own key");
        edit(&|m| m[1].3 = BASE64.encode([7u8; 31]), "decodes to 31 bytes");
        edit(&|m| m[1].3 = "!!".into(), "not base64");
        edit(&|m| m[1].2 = "ftp://x:1", "scheme");
        edit(&|m| m[1].2 = "http://h:1/api", "only the origin");
        edit(&|m| m[1].2 = "not a url", "url");
        edit(&|m| m[1].1 = " ", "name must be");
        edit(&|m| m[1].3 = public(100), "operator needs a key of its own");
        for (text, expected) in cases {
            let err = ConsortiumConfig::parse(&text).expect_err(expected);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
        // An invalid curve point: the 32 bytes decode, the key does not.
        let not_a_point = (0u8..=255).map(|b| [b; 32]).find(|bytes| VerifyingKey::from_bytes(bytes).is_err());
        let not_a_point = not_a_point.expect("some byte pattern is not a point");
        let mut members = two();
        members[0].3 = BASE64.encode(not_a_point);
        let err = ConsortiumConfig::parse(&file(&members)).expect_err("bad point");
        assert!(err.contains("not a valid Ed25519 public key"), "{err}");
    }

    #[test]
    fn joining_checks_membership_and_key() {
        let config = ConsortiumConfig::parse(&file(&two())).expect("valid");
        let joined = Consortium::new(&config, BankId(2), key(2)).expect("member with its key");
        assert_eq!(joined.signing_key.verifying_key(), joined.members[&BankId(2)].public_key);
        let err = Consortium::new(&config, BankId(3), key(3)).expect_err("not a member");
        assert!(err.to_string().contains("not a member"), "{err}");
        let err = Consortium::new(&config, BankId(2), key(1)).expect_err("other bank's key");
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn default_listen_follows_the_member_url() {
        let mut members = two();
        members[1].2 = "http://bank2:9002";
        let config = ConsortiumConfig::parse(&file(&members)).expect("valid");
        assert_eq!(config.default_listen(BankId(1)), Some("127.0.0.1:8081".parse().expect("addr")));
        assert_eq!(config.default_listen(BankId(2)), Some("0.0.0.0:9002".parse().expect("addr")));
        assert_eq!(config.default_listen(BankId(3)), None);
    }

    #[test]
    fn key_files_are_private_round_trip_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-1.key");
        let key = generate_signing_key().expect("key");
        write_key_files(&path, &key).expect("written");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_signing_key(&path).expect("read").to_bytes(), key.to_bytes());
        assert_eq!(read_public_key(&public_key_path(&path)).expect("read pub"), key.verifying_key());
        assert!(write_key_files(&path, &key).is_err(), "an existing key file is never overwritten");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read_signing_key(&path).expect_err("world-readable key");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn generated_keypairs_differ_and_match() {
        let (secret, public) = generate_keypair().expect("pair");
        let (other, _) = generate_keypair().expect("pair");
        assert_ne!(secret, other);
        let key = parse_signing_key(&secret).expect("secret");
        assert_eq!(parse_public_key(&public).expect("public"), key.verifying_key());
    }

    #[test]
    fn load_resolves_node_paths_against_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("consortium.toml");
        let text = format!("{}\n[node]\nsigning_key_file = \"keys/k\"\ndata = \"/abs\"\n", file(&two()));
        std::fs::write(&path, text).expect("write");
        let config = ConsortiumConfig::load(&path).expect("load");
        assert_eq!(config.node.signing_key_file, Some(dir.path().join("keys/k")));
        assert_eq!(config.node.data, Some(PathBuf::from("/abs")));
        let err = ConsortiumConfig::load(&dir.path().join("missing.toml")).expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn a_consortium_is_assembled_member_by_member_and_a_bad_member_changes_nothing() {
        let draft = ConsortiumConfig::draft(&key(100).verifying_key());
        assert!(ConsortiumConfig::parse(&draft).expect_err("no members yet").contains("no members"));
        let member = |id: u32, url: &str, seed: u8| Member {
            id: BankId(id),
            name: format!("Bank {id}"),
            url: url.into(),
            public_key: key(seed).verifying_key(),
        };
        let one = ConsortiumConfig::add_member(&draft, &member(1, "http://10.0.0.1:8081", 1)).expect("first");
        let two = ConsortiumConfig::add_member(&one, &member(2, "http://bank2:8082", 2)).expect("second");
        let config = ConsortiumConfig::parse(&two).expect("valid");
        assert_eq!(config.members.len(), 2);
        assert_eq!(config.operator_key, key(100).verifying_key());
        assert_eq!(config.members[&BankId(2)].public_key, key(2).verifying_key());
        for (bad, why) in [
            (member(2, "http://10.0.0.3:8083", 3), "listed twice"),
            (member(3, "http://bank2:8082", 3), "also bank 2's"),
            (member(3, "http://10.0.0.3:8083", 1), "every bank needs its own key"),
            (member(3, "http://10.0.0.3:8083", 100), "operator needs a key of its own"),
            (member(0, "http://10.0.0.3:8083", 3), "ids start at 1"),
            (member(3, "ftp://10.0.0.3", 3), "url"),
        ] {
            let err = ConsortiumConfig::add_member(&two, &bad).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
        assert!(ConsortiumConfig::add_member("not toml [", &member(1, "http://a:1", 1)).is_err());
    }

    #[test]
    fn institution_codes_are_read_validated_derived_when_missing_and_written_by_add_member() {
        let draft = ConsortiumConfig::draft(&key(100).verifying_key());
        let member = |id: u32| Member {
            id: BankId(id),
            name: format!("Bank {id}"),
            url: format!("http://10.0.0.{id}:8081"),
            public_key: key(id as u8).verifying_key(),
        };
        let one = ConsortiumConfig::add_member(&draft, &member(1)).expect("first");
        assert!(one.contains("institution_code = \"90000001\""), "add_member assigns a code: {one}");
        let config = ConsortiumConfig::parse(&one).expect("valid");
        assert_eq!(config.institution_code(BankId(1)).as_str(), "90000001");
        assert_eq!(ConsortiumConfig::parse(&config.to_toml()).expect("round trip"), config);
        // An old file without codes loads, with derived ones.
        let old = one.replace("institution_code = \"90000001\"\n", "");
        let config = ConsortiumConfig::parse(&old).expect("an old file loads");
        assert_eq!(config.institution_code(BankId(1)).as_str(), "90000001");
        let given = one.replace("90000001", "12345678");
        assert_eq!(ConsortiumConfig::parse(&given).expect("given").institution_code(BankId(1)).as_str(), "12345678");
        let bad = one.replace("90000001", "1234");
        assert!(ConsortiumConfig::parse(&bad).expect_err("short").contains("institution_code"));
        let two = ConsortiumConfig::add_member(&one, &member(2)).expect("second");
        let clash = two.replace("90000002", "90000001");
        assert!(ConsortiumConfig::parse(&clash).expect_err("clash").contains("also bank 1's"));
    }
}
