//! `hallmark certs init|issue|revoke`: the private CA of a cluster.

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use hallmark_protocol::NodeId;
use hallmark_transport::ca_bulk;
use hallmark_transport::ca_dir::{self, CaPaths, InitOptions, RevokeTarget};
use hallmark_transport::crl::Serial;
use hallmark_transport::pki::{CA_DAYS, LEAF_DAYS};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::warn;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA and the coordinator's certificate. DIR gets what the coordinator host needs:
    /// ca.pem, coordinator.pem, coordinator-key.pem, crl.pem. The CA's key, its copy of the
    /// revocation list and the index of issued certificates go to DIR/ca-private (or --ca-out):
    /// keep that directory off the coordinator host and off the nodes.
    Init(InitArgs),
    /// Issue a node's client certificate (DIR2/NODE.pem and DIR2/NODE-key.pem, key mode 0600), one
    /// for every node of a list with --nodes FILE, or with --coordinator a new coordinator
    /// certificate (DIR2/coordinator.pem and -key.pem).
    Issue(IssueArgs),
    /// Revoke a node's certificates (or one by serial or file): the CA signs a new revocation list
    /// (crl.pem) that lists them too; copy it to the coordinator's --crl file: a running
    /// coordinator takes it up within 2 s and cuts the connections it revokes.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the coordinator host's files (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Directory for the CA's private files (default: OUT/ca-private, mode 0700).
    #[arg(long, value_name = "DIR")]
    ca_out: Option<PathBuf>,
    /// Host name or IP address the coordinator is reached by; repeat for several
    /// (default: localhost, 127.0.0.1, ::1).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Days the coordinator's certificate is valid (1 to 365).
    #[arg(long, default_value_t = LEAF_DAYS, value_name = "DAYS")]
    days: u32,
    /// Days the CA is valid (1 to 7300).
    #[arg(long, default_value_t = CA_DAYS, value_name = "DAYS")]
    ca_days: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["node", "nodes", "coordinator"])))]
pub struct IssueArgs {
    /// The CA directory (OUT/ca-private of `certs init`, or OUT itself, or an old-layout directory
    /// holding ca.pem and ca-key.pem).
    #[arg(long)]
    ca: PathBuf,
    /// The node id the certificate carries; the probe must run with the same --node.
    #[arg(long)]
    node: Option<NodeId>,
    /// A file listing the nodes to issue certificates for, one node id per line (blank lines and
    /// lines starting with # skipped): thousands in one go, the CA loaded once. A bad line issues
    /// nothing.
    #[arg(long, value_name = "FILE")]
    nodes: Option<PathBuf>,
    /// Issue a new coordinator certificate instead (to renew it or change its names).
    #[arg(long)]
    coordinator: bool,
    /// With --coordinator: host name or IP address the coordinator is reached by; repeat for
    /// several (default: localhost, 127.0.0.1, ::1).
    #[arg(long = "san", value_name = "NAME", requires = "coordinator")]
    sans: Vec<String>,
    /// Days the certificate is valid (1 to 365).
    #[arg(long, default_value_t = LEAF_DAYS, value_name = "DAYS")]
    days: u32,
    /// Directory to write the certificate and its key into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["node", "serial", "cert"])))]
pub struct RevokeArgs {
    /// The CA directory, as for `certs issue`.
    #[arg(long)]
    ca: PathBuf,
    /// Revoke every certificate the CA's index records for this node.
    #[arg(long)]
    node: Option<NodeId>,
    /// Revoke the certificate with this serial number (hex, `:` separators allowed).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// Revoke the certificate in this PEM file (it must come from this CA).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Also write the new list here (e.g. the coordinator's --crl file); repeat for several.
    #[arg(long = "crl-out", value_name = "FILE")]
    crl_out: Vec<PathBuf>,
}

pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCommand::Init(a) => init(a),
        CertsCommand::Issue(a) => issue(a),
        CertsCommand::Revoke(a) => revoke(a),
    }
}

fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    let opts = InitOptions {
        sans: a.sans,
        ca_out: a.ca_out,
        days: a.days,
        ca_days: a.ca_days,
    };
    let written = ca_dir::init(&a.out, &opts)
        .with_context(|| format!("creating a CA in {}", a.out.display()))?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let private = written[5].parent().unwrap_or(&a.out);
    println!(
        "the coordinator host needs only {}: ca.pem, coordinator.pem, coordinator-key.pem, crl.pem \
         (pass crl.pem as --crl); keep {} (the CA key) off the coordinator host and the nodes",
        a.out.display(),
        private.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn issue(a: IssueArgs) -> anyhow::Result<ExitCode> {
    warn_legacy(&a.ca);
    let written = match (&a.node, &a.nodes) {
        (Some(node), _) => ca_dir::issue_node_files_for(&a.ca, node, &a.out, a.days)
            .with_context(|| format!("issuing a certificate for node {node}"))?,
        (None, Some(list)) => return issue_list(&a, list),
        (None, None) => ca_dir::issue_coordinator_files(&a.ca, &a.sans, &a.out, a.days)
            .context("issuing a coordinator certificate")?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `certs issue --nodes FILE`: every node of the list, or none.
fn issue_list(a: &IssueArgs, list: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(list)
        .with_context(|| format!("reading the node list {}", list.display()))?;
    let nodes = ca_bulk::parse_node_list(&text, &list.display().to_string())?;
    let written = ca_bulk::issue_nodes_files(&a.ca, &nodes, &a.out, a.days).with_context(|| {
        format!(
            "issuing certificates for the {} nodes of {}",
            nodes.len(),
            list.display()
        )
    })?;
    println!(
        "wrote {} certificates and keys for the {} nodes of {} into {} (NODE.pem, NODE-key.pem)",
        written.len() / 2,
        nodes.len(),
        list.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn revoke(a: RevokeArgs) -> anyhow::Result<ExitCode> {
    warn_legacy(&a.ca);
    let target = match (a.node, a.serial, a.cert) {
        (Some(node), _, _) => RevokeTarget::Node(node),
        (_, Some(serial), _) => RevokeTarget::Serial(Serial::parse(&serial)?),
        (_, _, Some(cert)) => RevokeTarget::Cert(cert),
        _ => bail!("pass --node NODE, --serial HEX or --cert FILE"),
    };
    let done = ca_dir::revoke(&a.ca, &target, &a.crl_out)
        .with_context(|| format!("revoking with the CA in {}", a.ca.display()))?;
    if done.first_list {
        println!("this CA had no revocation list yet: this is its first");
    }
    for serial in &done.already {
        println!("serial {serial} was already revoked");
    }
    for (serial, who) in &done.added {
        let who = who.as_deref().unwrap_or("not in the index");
        println!("revoked serial {serial} ({who})");
    }
    for path in &done.written {
        println!("wrote {}", path.display());
    }
    if done.added.is_empty() {
        println!(
            "nothing new to revoke; the revocation list stays number {} ({} revoked)",
            done.number, done.listed
        );
    } else {
        println!(
            "revocation list number {} lists {} certificates; copy crl.pem to the coordinator's \
             --crl file: a running coordinator takes it up within 2 s and cuts the connections \
             it revokes",
            done.number, done.listed
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn warn_legacy(dir: &std::path::Path) {
    if let Ok(paths) = CaPaths::resolve(dir) {
        if paths.legacy {
            warn!("{}", paths.legacy_advice());
        }
    }
}
