//! `hallmark certs init` and `hallmark certs issue`: the private CA of a cluster.

use anyhow::Context;
use clap::{Args, Subcommand};
use hallmark_protocol::NodeId;
use hallmark_transport::pki;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA and the coordinator's certificate: DIR/ca.pem, ca-key.pem, coordinator.pem,
    /// coordinator-key.pem (keys mode 0600).
    Init(InitArgs),
    /// Issue a node's client certificate: DIR2/NODE.pem and DIR2/NODE-key.pem (key mode 0600).
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Host name or IP address the coordinator is reached by; repeat for several
    /// (default: localhost, 127.0.0.1, ::1).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Directory holding ca.pem and ca-key.pem (from `certs init`).
    #[arg(long)]
    ca: PathBuf,
    /// The node id the certificate carries; the probe must run with the same --node.
    #[arg(long)]
    node: NodeId,
    /// Directory to write NODE.pem and NODE-key.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    let written = match cmd {
        CertsCommand::Init(a) => pki::init_dir(&a.out, &a.sans)
            .with_context(|| format!("creating a CA in {}", a.out.display()))?,
        CertsCommand::Issue(a) => pki::issue_node_files(&a.ca, &a.node, &a.out)
            .with_context(|| format!("issuing a certificate for node {}", a.node))?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
