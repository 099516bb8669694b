//! Certificates for many nodes in one go (`hallmark certs issue --nodes FILE`): the node list file
//! ([`parse_node_list`]) and [`issue_nodes_files`], which loads the CA once, issues every
//! certificate in memory, records them all in the CA's index with one write and one `fsync` (under
//! the CA directory's lock, [`crate::ca_lock`]), and only then writes the files. A list with one
//! bad line issues nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hallmark_protocol::NodeId;

use crate::ca_dir::{append_index, index_line, CaDirError, CaPaths};
use crate::ca_lock::CaLock;
use crate::files::{create_dir, write_atomic};
use crate::pki::Ca;

/// The most nodes one list may name (a hall is at most some tens of thousands of nodes).
pub const MAX_NODES: usize = 100_000;

/// Why a node list cannot be used; nothing was issued.
#[derive(Debug, thiserror::Error)]
pub enum NodeListError {
    #[error("{file} line {line}: {detail}; each line is one node id (letters, digits, '.', '_', '-'), blank lines and lines starting with # are skipped")]
    BadLine {
        file: String,
        line: usize,
        detail: String,
    },
    #[error(
        "{file} line {line}: node {node} is listed already on line {first}; list each node once"
    )]
    Duplicate {
        file: String,
        line: usize,
        node: String,
        first: usize,
    },
    #[error("{file} names no node; put one node id per line")]
    Empty { file: String },
    #[error("{file} names more than {MAX_NODES} nodes; split it into several lists")]
    TooMany { file: String },
}

/// Reads a node list: one node id per line, surrounding blanks trimmed; blank lines and lines
/// starting with `#` are skipped. `file` names the list in errors. Every line is checked before
/// anything is returned: a bad id or a node listed twice is an error naming its line.
pub fn parse_node_list(text: &str, file: &str) -> Result<Vec<NodeId>, NodeListError> {
    let mut nodes = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let id = raw.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        let node = NodeId::new(id).map_err(|e| NodeListError::BadLine {
            file: file.to_owned(),
            line,
            detail: e.to_string(),
        })?;
        if let Some(first) = seen.insert(id.to_owned(), line) {
            return Err(NodeListError::Duplicate {
                file: file.to_owned(),
                line,
                node: id.to_owned(),
                first,
            });
        }
        if nodes.len() == MAX_NODES {
            return Err(NodeListError::TooMany {
                file: file.to_owned(),
            });
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(NodeListError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(nodes)
}

/// Issues a certificate valid `days` days for each of `nodes` from the CA found from `ca_dir`
/// ([`CaPaths::resolve`]), records them in the CA's index and writes `out/NODE.pem` and
/// `out/NODE-key.pem` (key mode 0600) for each, creating `out`. Returns the written paths, two per
/// node in list order. When issuing fails nothing is written; when writing the files fails half-way,
/// the index already holds every certificate (revocable by node), and issuing again replaces the
/// files.
pub fn issue_nodes_files(
    ca_dir: &Path,
    nodes: &[NodeId],
    out: &Path,
    days: u32,
) -> Result<Vec<PathBuf>, CaDirError> {
    let paths = CaPaths::resolve(ca_dir)?;
    let ca = Ca::load(&paths.private)?;
    let mut issued = Vec::with_capacity(nodes.len());
    let mut index = String::new();
    for node in nodes {
        let cert = ca.issue_node_for(node, days)?;
        index.push_str(&index_line(&cert.cert_pem, "node", node.as_str())?);
        issued.push((node, cert));
    }
    create_dir(out)?;
    // Issuing (key generation) is done without the lock; only the index needs it.
    append_index(&CaLock::acquire(&paths.private)?, &index)?;
    let mut written = Vec::with_capacity(2 * nodes.len());
    for (node, cert) in issued {
        let (pem, key) = (
            out.join(format!("{node}.pem")),
            out.join(format!("{node}-key.pem")),
        );
        write_atomic(&key, cert.key_pem.as_bytes(), true)?;
        write_atomic(&pem, cert.cert_pem.as_bytes(), false)?;
        written.extend([pem, key]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca_dir::{init_dir, read_index};
    use crate::pki::node_id_from_cert;
    use crate::pki::tests::{der_of, temp_dir};
    use std::fs;

    #[test]
    fn a_node_list_skips_comments_and_blanks_and_names_the_bad_line() {
        let text = "# rack 1\nr1n1\n  r1n2  \n\n# rack 2\nr2n1\n";
        let nodes = parse_node_list(text, "nodes.txt").unwrap();
        let ids: Vec<&str> = nodes.iter().map(NodeId::as_str).collect();
        assert_eq!(ids, ["r1n1", "r1n2", "r2n1"]);

        let err = parse_node_list("r1n1\nr1 n2\n", "nodes.txt").unwrap_err();
        assert!(
            matches!(err, NodeListError::BadLine { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("nodes.txt line 2: "), "{err}");
        let err = parse_node_list("a\nb\n\na\n", "nodes.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "nodes.txt line 4: node a is listed already on line 1; list each node once"
        );
        let err = parse_node_list("# nothing\n\n", "nodes.txt").unwrap_err();
        assert!(matches!(err, NodeListError::Empty { .. }), "{err}");
        let many: String = (0..=MAX_NODES).map(|i| format!("n{i}\n")).collect();
        let err = parse_node_list(&many, "big.txt").unwrap_err();
        assert!(matches!(err, NodeListError::TooMany { .. }), "{err}");
    }

    #[test]
    fn many_nodes_are_issued_from_one_ca_load_and_recorded_once_each() {
        let base = temp_dir("bulk");
        init_dir(&base.join("pki"), &[]).unwrap();
        let text: String = (0..40).map(|i| format!("r{}n{}\n", i / 8, i % 8)).collect();
        let nodes = parse_node_list(&text, "nodes.txt").unwrap();
        let written = issue_nodes_files(&base.join("pki"), &nodes, &base.join("out"), 30).unwrap();
        assert_eq!(written.len(), 80);
        for (node, pair) in nodes.iter().zip(written.chunks(2)) {
            assert_eq!(pair[0], base.join("out").join(format!("{node}.pem")));
            assert_eq!(pair[1], base.join("out").join(format!("{node}-key.pem")));
            let pem = fs::read_to_string(&pair[0]).unwrap();
            assert_eq!(&node_id_from_cert(&der_of(&pem)).unwrap(), node);
            assert!(fs::read_to_string(&pair[1])
                .unwrap()
                .contains("PRIVATE KEY"));
        }
        let index = read_index(&base.join("pki/ca-private")).unwrap();
        let issued: Vec<_> = index.iter().filter(|e| e.kind == "node").collect();
        assert_eq!(issued.len(), 40);
        let mut serials: Vec<_> = issued.iter().map(|e| e.serial.clone()).collect();
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 40, "every certificate has its own serial");

        // A validity the CA refuses: nothing is written, nothing recorded.
        let err =
            issue_nodes_files(&base.join("pki"), &nodes, &base.join("long"), 366).unwrap_err();
        assert!(err.to_string().contains("--days 366"), "{err}");
        assert!(!base.join("long").exists());
        assert_eq!(
            read_index(&base.join("pki/ca-private")).unwrap().len(),
            index.len()
        );
        fs::remove_dir_all(base).unwrap();
    }
}
