//! The CA's files on disk: `hallmark certs init`, `certs issue` and `certs revoke`.
//!
//! `certs init --out DIR` splits what it writes by where it belongs:
//!
//! * `DIR/` — what the coordinator host needs and nothing more: `ca.pem`, `coordinator.pem`,
//!   `coordinator-key.pem` (mode 0600) and `crl.pem` (the revocation list, empty at first).
//! * the CA directory, `DIR/ca-private/` unless `--ca-out` names another (mode 0700) — what only
//!   the operator who issues and revokes certificates needs: `ca.pem`, `ca-key.pem` (mode 0600),
//!   `crl.pem` (the master copy every revocation extends) and `issued.tsv`, the index of issued
//!   certificates (serial, kind, node, expiry) that lets `certs revoke --node` find a node's
//!   certificates. Keep it off the coordinator host and off the nodes.
//!
//! `--ca DIR` of `issue` and `revoke` accepts the CA directory itself, or the `init --out`
//! directory above it, or a directory of the old layout (where `ca-key.pem` sat beside the
//! coordinator's files; it keeps working, and [`CaPaths::legacy`] lets the CLI say how to move
//! the key away). Every file is written to a temporary name, synced and renamed; private keys are
//! created with mode 0600; an existing `ca-key.pem` is never overwritten. `issue` and `revoke` hold
//! the CA directory's lock ([`crate::ca_lock`]) while they read and write its list and index, so
//! two at once neither number two lists alike nor interleave the index.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use hallmark_protocol::NodeId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::ca_lock::{CaLock, LockError};
use crate::crl::{self, CrlError, Revoked, Serial, CRL_FILE};
use crate::files::{create_dir, read_text, write_atomic};
use crate::pki::{
    self, Ca, CertifiedKey, PkiError, CA_CERT_FILE, CA_DAYS, CA_KEY_FILE, COORDINATOR_CERT_FILE,
    COORDINATOR_KEY_FILE, LEAF_DAYS,
};

/// The CA directory inside the `init --out` directory when `--ca-out` is not given.
pub const CA_PRIVATE_DIR: &str = "ca-private";
/// The index of issued certificates in the CA directory.
pub const ISSUED_FILE: &str = "issued.tsv";
const ISSUED_HEADER: &str =
    "# certificates issued by this CA: serial<TAB>kind<TAB>node<TAB>not-after (unix seconds)\n";

/// Why an operation on the CA's files failed.
#[derive(Debug, thiserror::Error)]
pub enum CaDirError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Crl(#[from] CrlError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{dir} holds no CA key: neither {dir}/ca-key.pem nor {dir}/ca-private/ca-key.pem exists; pass the directory `hallmark certs init --out` wrote, or the one its --ca-out named")]
    NoCa { dir: String },
    #[error("no certificate issued to node {node} is recorded in {index}; certificates issued before hallmark kept this index are not listed: revoke by file with --cert NODE.pem or by --serial HEX")]
    NotIndexed { node: String, index: String },
    #[error("{file} line {line}: {detail}; each line must be serial<TAB>kind<TAB>node<TAB>not-after as `hallmark certs issue` writes it")]
    BadIndex {
        file: String,
        line: usize,
        detail: String,
    },
    #[error("{file} was not issued by the CA in {dir} ({detail}); pass a certificate `hallmark certs issue --ca {dir}` wrote")]
    ForeignCert {
        file: String,
        dir: String,
        detail: String,
    },
    #[error("--ca-out {dir} is the --out directory: the CA key would sit beside the coordinator's files; choose a directory that stays off the coordinator host, or leave --ca-out out for {dir}/ca-private")]
    CaOutIsOut { dir: String },
    #[error("revocation list number {number} is signed and saved in {list}, but its copy {copy} could not be written ({detail}); copy {list} there by hand: running `hallmark certs revoke` again finds nothing new to revoke and writes nothing")]
    CopyNotWritten {
        list: String,
        number: u64,
        copy: String,
        detail: String,
    },
    #[error("revocation list {file} is number {number}, the largest there is, so no list can follow it; create a new CA with `hallmark certs init` and reissue every certificate")]
    CrlNumberExhausted { file: String, number: u64 },
    #[error("--ca-days {ca_days} is shorter than --days {days}: the coordinator's certificate cannot outlive its CA; pass --ca-days {days} or more, or a smaller --days")]
    CaShorterThanLeaf { ca_days: u32, days: u32 },
}

/// What `certs init` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Names the coordinator is reached by; empty means [`crate::pki::DEFAULT_SANS`].
    pub sans: Vec<String>,
    /// The CA directory; `None` means `OUT/ca-private`.
    pub ca_out: Option<PathBuf>,
    /// Lifetime of the coordinator's certificate.
    pub days: u32,
    /// Lifetime of the CA.
    pub ca_days: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            sans: Vec::new(),
            ca_out: None,
            days: LEAF_DAYS,
            ca_days: CA_DAYS,
        }
    }
}

/// Where a CA's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// The directory with `ca.pem`, `ca-key.pem`, `crl.pem` and `issued.tsv`.
    pub private: PathBuf,
    /// The `init --out` directory above it, whose `crl.pem` is the coordinator's copy.
    pub public: Option<PathBuf>,
    /// `ca-key.pem` sits beside the coordinator's key (the layout before the CA directory).
    pub legacy: bool,
}

impl CaPaths {
    /// Finds the CA from `dir` (the CA directory, the `init --out` directory, or the old layout).
    pub fn resolve(dir: &Path) -> Result<CaPaths, CaDirError> {
        if dir.join(CA_KEY_FILE).exists() {
            return Ok(CaPaths {
                private: dir.to_owned(),
                public: None,
                legacy: dir.join(COORDINATOR_KEY_FILE).exists(),
            });
        }
        let private = dir.join(CA_PRIVATE_DIR);
        if private.join(CA_KEY_FILE).exists() {
            return Ok(CaPaths {
                private,
                public: Some(dir.to_owned()),
                legacy: false,
            });
        }
        Err(CaDirError::NoCa {
            dir: dir.display().to_string(),
        })
    }

    /// What to do about a legacy layout, for the operator.
    pub fn legacy_advice(&self) -> String {
        let d = self.private.display();
        format!(
            "{d} keeps ca-key.pem beside the coordinator's files, so whoever can read the \
             coordinator host can issue certificates; move the CA into its own directory: \
             `mkdir -m 700 {d}/{CA_PRIVATE_DIR} && mv {d}/{CA_KEY_FILE} {d}/{CA_PRIVATE_DIR}/ && \
             cp {d}/{CA_CERT_FILE} {d}/{CA_PRIVATE_DIR}/` (then also move {ISSUED_FILE} and \
             {CRL_FILE} if present), and later keep {d}/{CA_PRIVATE_DIR} off that host"
        )
    }
}

/// `certs init` with the defaults: `out` for the coordinator host, `out/ca-private` for the CA.
pub fn init_dir(out: &Path, sans: &[String]) -> Result<Vec<PathBuf>, CaDirError> {
    let opts = InitOptions {
        sans: sans.to_vec(),
        ..InitOptions::default()
    };
    init(out, &opts)
}

/// Creates a CA and the coordinator's certificate (see the module docs for the layout). Refuses
/// to run when a `ca-key.pem` already exists in `out` or in the CA directory. Returns the written
/// paths: the coordinator host's four files first, then the CA directory's four.
pub fn init(out: &Path, opts: &InitOptions) -> Result<Vec<PathBuf>, CaDirError> {
    let ca_out = opts
        .ca_out
        .clone()
        .unwrap_or_else(|| out.join(CA_PRIVATE_DIR));
    if same_dir(out, &ca_out) {
        return Err(CaDirError::CaOutIsOut {
            dir: out.display().to_string(),
        });
    }
    for existing in [out.join(CA_KEY_FILE), ca_out.join(CA_KEY_FILE)] {
        if existing.exists() {
            return Err(PkiError::CaKeyExists {
                file: existing.display().to_string(),
            }
            .into());
        }
    }
    // Each lifetime in its range first, so `--ca-days 0` is not reported as shorter than --days.
    pki::ca_validity(opts.ca_days)?;
    pki::leaf_validity(opts.days)?;
    if opts.ca_days < opts.days {
        return Err(CaDirError::CaShorterThanLeaf {
            ca_days: opts.ca_days,
            days: opts.days,
        });
    }
    // Validate the names and generate everything before touching the disk.
    let ca = Ca::generate_for(opts.ca_days)?;
    let coordinator = ca.issue_coordinator_for(&opts.sans, opts.days)?;
    let list = crl::sign(&ca, 1, &[], OffsetDateTime::now_utc())?;
    let coordinator_entry = index_line(&coordinator.cert_pem, "coordinator", "-")?;
    create_dir(out)?;
    create_private_dir(&ca_out)?;
    let files = [
        (out.join(CA_CERT_FILE), ca.cert_pem().to_owned(), false),
        (out.join(COORDINATOR_CERT_FILE), coordinator.cert_pem, false),
        (out.join(COORDINATOR_KEY_FILE), coordinator.key_pem, true),
        (out.join(CRL_FILE), list.pem.clone(), false),
        (ca_out.join(CA_CERT_FILE), ca.cert_pem().to_owned(), false),
        (ca_out.join(CA_KEY_FILE), ca.key_pem(), true),
        (ca_out.join(CRL_FILE), list.pem, false),
        (
            ca_out.join(ISSUED_FILE),
            format!("{ISSUED_HEADER}{coordinator_entry}"),
            false,
        ),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (path, contents, secret) in files {
        write_atomic(&path, contents.as_bytes(), secret)?;
        written.push(path);
    }
    Ok(written)
}

/// Whether `a` and `b` name one directory (by their canonical paths where they exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.components().eq(b.components()),
    }
}

/// Issues a certificate for `node` valid [`LEAF_DAYS`] days from the CA in `ca_dir`; see
/// [`issue_node_files_for`].
pub fn issue_node_files(
    ca_dir: &Path,
    node: &NodeId,
    out: &Path,
) -> Result<Vec<PathBuf>, CaDirError> {
    issue_node_files_for(ca_dir, node, out, LEAF_DAYS)
}

/// Issues a certificate for `node` valid `days` days from the CA found from `ca_dir`
/// ([`CaPaths::resolve`]), records it in the CA's index and writes `out/NODE.pem` and
/// `out/NODE-key.pem` (creating `out`). Returns the written paths.
pub fn issue_node_files_for(
    ca_dir: &Path,
    node: &NodeId,
    out: &Path,
    days: u32,
) -> Result<Vec<PathBuf>, CaDirError> {
    crate::ca_bulk::issue_nodes_files(ca_dir, std::slice::from_ref(node), out, days)
}

/// Issues a new coordinator certificate (before the old one expires, or for new names) from the
/// CA found from `ca_dir`, records it and writes `out/coordinator.pem` and
/// `out/coordinator-key.pem`. Returns the written paths.
pub fn issue_coordinator_files(
    ca_dir: &Path,
    sans: &[String],
    out: &Path,
    days: u32,
) -> Result<Vec<PathBuf>, CaDirError> {
    let files = [COORDINATOR_CERT_FILE, COORDINATOR_KEY_FILE].map(String::from);
    issue_files(ca_dir, ("coordinator", "-"), out, files, |ca| {
        ca.issue_coordinator_for(sans, days)
    })
}

/// Loads the CA found from `ca_dir`, issues with it, records the certificate in its index as
/// `(kind, node)` and writes the certificate and the key (mode 0600) to `out` (created) as
/// `cert_file` and `key_file`. Returns their paths.
fn issue_files(
    ca_dir: &Path,
    (kind, node): (&str, &str),
    out: &Path,
    [cert_file, key_file]: [String; 2],
    issue: impl FnOnce(&Ca) -> Result<CertifiedKey, PkiError>,
) -> Result<Vec<PathBuf>, CaDirError> {
    let paths = CaPaths::resolve(ca_dir)?;
    let issued = issue(&Ca::load(&paths.private)?)?;
    let entry = index_line(&issued.cert_pem, kind, node)?;
    create_dir(out)?;
    let (cert, key) = (out.join(cert_file), out.join(key_file));
    append_index(&CaLock::acquire(&paths.private)?, &entry)?;
    write_atomic(&key, issued.key_pem.as_bytes(), true)?;
    write_atomic(&cert, issued.cert_pem.as_bytes(), false)?;
    Ok(vec![cert, key])
}

/// Which certificates to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// Every certificate the index records for this node.
    Node(NodeId),
    /// One serial number.
    Serial(Serial),
    /// The certificate in this PEM file (it must come from this CA).
    Cert(PathBuf),
}

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// Serials added to the list now, with whom the index says they were issued to.
    pub added: Vec<(Serial, Option<String>)>,
    /// Serials asked for that were already on the list.
    pub already: Vec<Serial>,
    /// The number of the list in force afterwards and how many it lists.
    pub number: u64,
    pub listed: usize,
    /// Files written (none when nothing was added).
    pub written: Vec<PathBuf>,
    /// The CA had no list yet (old layout): this is its first.
    pub first_list: bool,
}

/// Adds `target`'s certificates to the CA's revocation list, under the CA directory's lock (waiting
/// at most [`crate::ca_lock::LOCK_WAIT`] for another command): reads the CA's `crl.pem` (checked
/// against the CA), signs a new list with every entry it had plus the new ones and the next CRL
/// number, and writes it to the CA directory, to the `init --out` directory above it when there
/// is one, and to every path in `outs`. Entries are dated now.
pub fn revoke(
    ca_dir: &Path,
    target: &RevokeTarget,
    outs: &[PathBuf],
) -> Result<Revocation, CaDirError> {
    revoke_at(ca_dir, target, outs, OffsetDateTime::now_utc())
}

/// [`revoke`] with the new entries and the list dated `now`.
pub fn revoke_at(
    ca_dir: &Path,
    target: &RevokeTarget,
    outs: &[PathBuf],
    now: OffsetDateTime,
) -> Result<Revocation, CaDirError> {
    let paths = CaPaths::resolve(ca_dir)?;
    // Held until the new list is written: whoever comes next reads it and numbers theirs after.
    let _lock = CaLock::acquire(&paths.private)?;
    let ca = Ca::load(&paths.private)?;
    let ca_der = ca.cert_der();
    let index = read_index(&paths.private)?;
    let serials = match target {
        RevokeTarget::Node(node) => {
            let found: Vec<Serial> = index
                .iter()
                .filter(|e| e.kind == "node" && e.node == node.as_str())
                .map(|e| e.serial.clone())
                .collect();
            if found.is_empty() {
                return Err(CaDirError::NotIndexed {
                    node: node.to_string(),
                    index: paths.private.join(ISSUED_FILE).display().to_string(),
                });
            }
            found
        }
        RevokeTarget::Serial(serial) => vec![serial.clone()],
        RevokeTarget::Cert(file) => vec![serial_of_own_cert(file, ca_der, &paths.private)?],
    };
    let crl_path = paths.private.join(CRL_FILE);
    let (mut entries, number, first_list) = if crl_path.exists() {
        let list = crl::load(&crl_path, std::slice::from_ref(ca_der))?;
        (list.revoked, list.number, false)
    } else {
        (Vec::new(), 0, true)
    };
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut added = Vec::new();
    let mut already = Vec::new();
    for serial in serials {
        if entries.iter().any(|r| r.serial == serial) {
            already.push(serial);
            continue;
        }
        let who = index
            .iter()
            .find(|e| e.serial == serial)
            .map(|e| format!("{} {}", e.kind, e.node));
        entries.push(Revoked {
            serial: serial.clone(),
            at: now,
        });
        added.push((serial, who));
    }
    if added.is_empty() {
        return Ok(Revocation {
            added,
            already,
            number,
            listed: entries.len(),
            written: Vec::new(),
            first_list,
        });
    }
    let next = number
        .checked_add(1)
        .ok_or_else(|| CaDirError::CrlNumberExhausted {
            file: crl_path.display().to_string(),
            number,
        })?;
    let list = crl::sign(&ca, next, &entries, now).map_err(|e| match e {
        CrlError::NotCrlSigner { .. } => CrlError::NotCrlSigner {
            file: paths.private.join(CA_CERT_FILE).display().to_string(),
        },
        e => e,
    })?;
    let written = write_list(&list, crl_path, &paths, outs)?;
    Ok(Revocation {
        added,
        already,
        number: list.number,
        listed: list.revoked.len(),
        written,
        first_list,
    })
}

/// Writes `list` to the CA's `crl_path`, then to the `init --out` directory above the CA
/// directory (if any) and to `outs`. Returns the written paths.
fn write_list(
    list: &crl::RevocationList,
    crl_path: PathBuf,
    paths: &CaPaths,
    outs: &[PathBuf],
) -> Result<Vec<PathBuf>, CaDirError> {
    // The CA's own list first: the next revocation extends it, so once it is written a failed
    // copy cannot be redone by revoking again.
    write_atomic(&crl_path, list.pem.as_bytes(), false)?;
    let list_file = crl_path.display().to_string();
    let mut written = vec![crl_path];
    let copies = paths.public.iter().map(|d| d.join(CRL_FILE));
    for copy in copies.chain(outs.iter().cloned()) {
        write_atomic(&copy, list.pem.as_bytes(), false).map_err(|e| {
            CaDirError::CopyNotWritten {
                list: list_file.clone(),
                number: list.number,
                copy: copy.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        written.push(copy);
    }
    Ok(written)
}

/// The serial of the certificate in `file`, which must be signed by the CA `ca_der`.
fn serial_of_own_cert(
    file: &Path,
    ca_der: &CertificateDer<'static>,
    dir: &Path,
) -> Result<Serial, CaDirError> {
    let foreign = |detail: String| CaDirError::ForeignCert {
        file: file.display().to_string(),
        dir: dir.display().to_string(),
        detail,
    };
    let pem = read_text(file)?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        PkiError::BadCertificatePem {
            file: file.display().to_string(),
            detail: e.to_string(),
        }
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| foreign(format!("not an X.509 certificate: {e}")))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| foreign(format!("the CA certificate does not parse: {e}")))?;
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(foreign(format!(
            "its issuer is {}, the CA is {}",
            cert.issuer(),
            ca.subject()
        )));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| foreign(format!("its signature does not verify: {e}")))?;
    Ok(Serial::from_be(&cert.serial.to_bytes_be()))
}

/// One line of the index of issued certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedEntry {
    pub serial: Serial,
    /// `node` or `coordinator`.
    pub kind: String,
    /// The node id, `-` for the coordinator.
    pub node: String,
    /// Expiry, unix seconds.
    pub not_after: i64,
}

pub(crate) fn index_line(cert_pem: &str, kind: &str, node: &str) -> Result<String, CaDirError> {
    let bad = |detail: String| PkiError::BadCertificate { detail };
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    let serial = Serial::from_be(&cert.serial.to_bytes_be());
    let not_after = cert.validity().not_after.timestamp();
    Ok(format!("{serial}\t{kind}\t{node}\t{not_after}\n"))
}

/// Reads the CA directory's index of issued certificates (empty when it has none yet).
pub fn read_index(private: &Path) -> Result<Vec<IssuedEntry>, CaDirError> {
    let path = private.join(ISSUED_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PkiError::Read {
                file: path.display().to_string(),
                source,
            }
            .into())
        }
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |detail: &str| CaDirError::BadIndex {
            file: path.display().to_string(),
            line: i + 1,
            detail: detail.to_owned(),
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let [serial, kind, node, not_after] = fields[..] else {
            return Err(bad("expected 4 tab-separated fields"));
        };
        entries.push(IssuedEntry {
            serial: Serial::parse(serial).map_err(|e| bad(&e.to_string()))?,
            kind: kind.to_owned(),
            node: node.to_owned(),
            not_after: not_after
                .parse()
                .map_err(|_| bad("the expiry is not a number of seconds"))?,
        });
    }
    Ok(entries)
}

/// Appends `line` to the index of the CA directory `lock` holds.
pub(crate) fn append_index(lock: &CaLock, line: &str) -> Result<(), CaDirError> {
    let path = lock.private().join(ISSUED_FILE);
    let err = |source| PkiError::Write {
        file: path.display().to_string(),
        source,
    };
    let fresh = !path.exists();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(err)?;
    if fresh {
        file.write_all(ISSUED_HEADER.as_bytes()).map_err(err)?;
    }
    file.write_all(line.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    create_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            PkiError::Write {
                file: dir.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "ca_dir_tests.rs"]
mod tests;
