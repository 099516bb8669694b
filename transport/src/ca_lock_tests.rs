//! Tests of the CA directory's lock: revocations and issues racing from threads get distinct,
//! consecutive list numbers, lose no revocation and keep the index whole; a held lock makes the
//! next command wait, and a lock still held after its bound is an error naming the file.

use super::*;
use crate::ca_bulk::issue_nodes_files;
use crate::ca_dir::{init_dir, issue_node_files, read_index, revoke, RevokeTarget};
use crate::crl::{self, Serial, CRL_FILE};
use crate::pki::tests::{der_of, temp_dir};
use hallmark_protocol::NodeId;
use std::sync::{Arc, Barrier};

fn serial_of(path: &Path) -> Serial {
    Serial::of_cert(&der_of(&fs::read_to_string(path).unwrap())).unwrap()
}

fn list_number(private: &Path) -> u64 {
    let ca = der_of(&fs::read_to_string(private.join("ca.pem")).unwrap());
    crl::load(&private.join(CRL_FILE), &[ca]).unwrap().number
}

#[test]
fn racing_revocations_and_issues_get_consecutive_numbers_and_lose_nothing() {
    const REVOKERS: usize = 8;
    const ISSUERS: usize = 4;
    let base = temp_dir("lock-race");
    let pki = base.join("pki");
    let private = pki.join("ca-private");
    init_dir(&pki, &[]).unwrap();
    let nodes: Vec<NodeId> = (0..REVOKERS)
        .map(|i| NodeId::new(format!("r{i}")).unwrap())
        .collect();
    issue_nodes_files(&pki, &nodes, &base.join("nodes"), 30).unwrap();

    // Every thread starts at once: each revokes its own node, or issues a new one.
    let barrier = Arc::new(Barrier::new(REVOKERS + ISSUERS));
    let revokers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (pki, barrier) = (pki.clone(), barrier.clone());
            let target = RevokeTarget::Node(node.clone());
            std::thread::spawn(move || {
                barrier.wait();
                revoke(&pki, &target, &[])
            })
        })
        .collect();
    let issuers: Vec<_> = (0..ISSUERS)
        .map(|i| {
            let (pki, barrier, out) = (pki.clone(), barrier.clone(), base.join("late"));
            std::thread::spawn(move || {
                barrier.wait();
                issue_node_files(&pki, &NodeId::new(format!("late{i}")).unwrap(), &out)
            })
        })
        .collect();
    let mut numbers: Vec<u64> = revokers
        .into_iter()
        .map(|t| {
            let done = t.join().unwrap().unwrap();
            assert_eq!(done.added.len(), 1);
            done.number
        })
        .collect();
    for t in issuers {
        t.join().unwrap().unwrap();
    }

    // The numbers are distinct and consecutive after the first list's 1.
    numbers.sort_unstable();
    let expected: Vec<u64> = (2..2 + REVOKERS as u64).collect();
    assert_eq!(numbers, expected, "the numbers of the racing revocations");
    // The last list holds every revocation, and the coordinator host's copy is that list.
    let ca = der_of(&fs::read_to_string(private.join("ca.pem")).unwrap());
    let list = crl::load(&private.join(CRL_FILE), &[ca]).unwrap();
    assert_eq!(list.number, 1 + REVOKERS as u64);
    for node in &nodes {
        let serial = serial_of(&base.join(format!("nodes/{node}.pem")));
        assert!(list.contains(&serial), "the revocation of {node} was lost");
    }
    assert_eq!(
        fs::read(pki.join(CRL_FILE)).unwrap(),
        fs::read(private.join(CRL_FILE)).unwrap()
    );
    // The index is whole: the coordinator, the revoked nodes and the late ones, a line each.
    let index = read_index(&private).unwrap();
    assert_eq!(index.len(), 1 + REVOKERS + ISSUERS);
    for i in 0..ISSUERS {
        let serial = serial_of(&base.join(format!("late/late{i}.pem")));
        assert!(index.iter().any(|e| e.serial == serial), "late{i}");
    }
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_held_lock_makes_the_next_command_wait_and_then_fail_naming_the_file() {
    let base = temp_dir("lock-held");
    let pki = base.join("pki");
    let private = pki.join("ca-private");
    init_dir(&pki, &[]).unwrap();
    issue_node_files(&pki, &NodeId::new("n1").unwrap(), &base.join("nodes")).unwrap();
    let held = CaLock::acquire(&private).unwrap();

    // Another lock waits its bound, then says which file, what holds it and what to do.
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let err = CaLock::acquire_within(&private, wait).unwrap_err();
    assert!(started.elapsed() >= wait);
    assert!(matches!(err, LockError::Held { .. }), "{err}");
    let text = err.to_string();
    let file = private.join(LOCK_FILE).display().to_string();
    assert!(
        text.contains(&file)
            && text.contains("certs revoke")
            && text.contains("run this command again")
            && text.contains("do not delete"),
        "{text}"
    );

    // A revocation waits for the lock rather than reading the list under another's hands.
    let revoking = {
        let pki = pki.clone();
        let target = RevokeTarget::Node(NodeId::new("n1").unwrap());
        std::thread::spawn(move || revoke(&pki, &target, &[]))
    };
    std::thread::sleep(wait);
    assert!(
        !revoking.is_finished(),
        "a revocation went ahead under another's lock"
    );
    assert_eq!(list_number(&private), 1);
    drop(held);
    let done = revoking.join().unwrap().unwrap();
    assert_eq!((done.number, list_number(&private)), (2, 2));

    // The file stays (it is not the lock), readable by the CA's owner alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(private.join(LOCK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fs::remove_dir_all(base).unwrap();
}
