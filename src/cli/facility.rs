//! `hallmark facility discover URL`: walk a Redfish service (a rack PDU, a CDU, a BMC), list the
//! facility resources it holds with their current readings, and flag what is physically
//! inconsistent (docs/FACILITY.md). Text for people, or one JSON object with `--json`. Exit 0:
//! read, nothing flagged; 2: read, with findings; 1: the service could not be read.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use hallmark_facility::auth::{ENV_PASSWORD, ENV_USER};
use hallmark_facility::inventory::{Connector, Inventory};
use hallmark_facility::{
    discover, Auth, ClientOptions, Credentials, RedfishClient, Trust, WalkOptions,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when the walk worked but found something to flag.
pub const EXIT_FINDINGS: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum FacilityCommand {
    /// Walk a Redfish service: its rack PDUs, CDUs and chassis with their current readings, and
    /// what is physically inconsistent. Exit 0: nothing flagged; 2: findings; 1: unreadable.
    Discover(DiscoverArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// A Redfish session: one login, a token on each request, the session deleted at the end.
    Session,
    /// HTTP basic authentication on every request.
    Basic,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The service, e.g. `https://pdu-r12.mgmt:443` (the path is ignored: the walk starts at /redfish/v1/).
    url: String,
    /// Print one JSON object on stdout (docs/FACILITY.md).
    #[arg(long)]
    json: bool,
    /// PEM file with the CA certificate that signed the service's certificate (HTTPS).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any certificate over HTTPS (encrypted, but the service is not authenticated).
    #[arg(long)]
    insecure: bool,
    /// User name (else HALLMARK_REDFISH_USER).
    #[arg(long)]
    user: Option<String>,
    /// File holding the password on its first line (else HALLMARK_REDFISH_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// How to authenticate when credentials are given.
    #[arg(long, value_enum, default_value_t = AuthMode::Session)]
    auth: AuthMode,
    /// Resources read at most.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_resources: usize,
    /// Seconds the whole walk may take.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    time_limit: f64,
    /// Seconds a request may take (connect, then answer).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    request_timeout: f64,
    /// A reading whose Sensor's ReadingTime is further than this from now is stale (absent); 0: no check.
    #[arg(long, value_name = "S", default_value_t = 300.0)]
    max_reading_age: f64,
}

pub async fn run(c: FacilityCommand) -> anyhow::Result<ExitCode> {
    match c {
        FacilityCommand::Discover(a) => discover_cmd(a).await,
    }
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        bail!("{what} must be a number of seconds above 0 and at most 86400, not {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

/// The credentials the arguments and the environment (`env`) give, if any.
fn credentials(
    a: &DiscoverArgs,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Credentials>> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(file) = &a.password_file {
        let user = a.user.clone().or_else(|| env(ENV_USER)).with_context(|| {
            format!(
                "--password-file {} needs a user: pass --user or set {ENV_USER}",
                file.display()
            )
        })?;
        return Ok(Some(Credentials::from_password_file(&user, file)?));
    }
    match Credentials::from_env(a.user.as_deref(), env)? {
        Some(c) => Ok(Some(c)),
        None if a.user.is_some() => {
            bail!("--user needs a password: pass --password-file FILE or set {ENV_PASSWORD}")
        }
        None => Ok(None),
    }
}

async fn discover_cmd(a: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let inv = walk(&a, |k| std::env::var(k).ok()).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inv).context("writing the JSON")?
        );
    } else {
        print!("{}", render(&inv));
    }
    Ok(if inv.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    })
}

/// Sets up the client from the arguments (credentials from them or `env`), walks, closes.
async fn walk(a: &DiscoverArgs, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Inventory> {
    let trust = match (&a.ca, a.insecure) {
        (Some(f), _) => Some(Trust::CaFile(f.clone())),
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    };
    let auth = match (credentials(a, env)?, a.auth) {
        (None, _) => Auth::None,
        (Some(c), AuthMode::Session) => Auth::Session(c),
        (Some(c), AuthMode::Basic) => Auth::Basic(c),
    };
    let timeout = seconds("--request-timeout", a.request_timeout)?;
    let opts = ClientOptions {
        connect_timeout: timeout.min(Duration::from_secs(5)),
        read_timeout: timeout,
        trust,
        auth,
        ..ClientOptions::default()
    };
    let walk = WalkOptions {
        max_resources: a.max_resources.max(1),
        max_reading_age_s: (a.max_reading_age > 0.0).then_some(a.max_reading_age),
        ..WalkOptions::default()
    };
    let limit = seconds("--time-limit", a.time_limit)?;
    let mut client = RedfishClient::new(&a.url, opts)
        .with_context(|| format!("setting up the Redfish client for {}", a.url))?;
    let result = discover(&mut client, walk, limit).await;
    client.close().await;
    result.with_context(|| format!("walking the Redfish service at {}", a.url))
}

fn num(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) => format!("{} {unit}", (x * 1000.0).round() / 1000.0),
        None => format!("- {unit}"),
    }
}

fn name(n: &Option<String>) -> &str {
    n.as_deref().unwrap_or("(unnamed)")
}

/// The inventory as text for people: absent readings are "-".
pub fn render(inv: &Inventory) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Redfish service {} — {} resources read, checked at {}",
        inv.service, inv.resources_read, inv.checked_at
    );
    let _ = writeln!(o, "\nRack PDUs: {}", inv.pdus.len());
    for p in &inv.pdus {
        let outlets: Vec<f64> = p.outlets.iter().filter_map(|x| x.power_w).collect();
        let _ = writeln!(o, "  {}  {}", name(&p.name), p.uri);
        let _ = writeln!(
            o,
            "    power {}, energy {}; {} mains, {} branch circuits, {} outlets ({} with a power reading, {} together)",
            num(p.power_w, "W"),
            num(p.energy_kwh, "kWh"),
            p.mains.len(),
            p.branches.len(),
            p.outlets.len(),
            outlets.len(),
            num((!outlets.is_empty()).then(|| outlets.iter().sum()), "W"),
        );
    }
    let _ = writeln!(o, "\nCDUs: {}", inv.cdus.len());
    for c in &inv.cdus {
        let _ = writeln!(o, "  {}  {}", name(&c.name), c.uri);
        for k in &c.connectors {
            connector_line(&mut o, k);
        }
    }
    let _ = writeln!(o, "\nChassis: {}", inv.chassis.len());
    for c in &inv.chassis {
        let present = c.power_supplies.iter().filter(|p| !p.absent).count();
        let _ = writeln!(o, "  {}  {}", name(&c.name), c.uri);
        let _ = writeln!(
            o,
            "    power {}, power supply input {} ({present} supplies present)",
            num(c.power_w, "W"),
            num(c.psu_input_w, "W")
        );
        for k in &c.coolant_connectors {
            connector_line(&mut o, k);
        }
    }
    let _ = writeln!(o, "\nFindings: {}", inv.findings.len());
    for f in &inv.findings {
        let _ = writeln!(
            o,
            "  {}  {}\n    {}",
            serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            f.uri,
            f.message
        );
    }
    o
}

fn connector_line(o: &mut String, k: &Connector) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "    {} {}: supply {}, return {}, ΔT {}, flow {}, heat removed {}, computed {}",
        k.side,
        name(&k.name),
        num(k.supply_temp_c, "°C"),
        num(k.return_temp_c, "°C"),
        num(k.delta_t_k, "K"),
        num(k.flow_lpm, "L/min"),
        num(k.heat_removed_kw, "kW"),
        num(
            k.computed_heat_kw.map(|x| (x * 100.0).round() / 100.0),
            "kW"
        ),
    );
    let _ = writeln!(
        o,
        "      pressures supply {}, return {}, Δ {}; coolant {} kg/m³, {} kJ/(kg·K) ({})",
        num(k.supply_pressure_kpa, "kPa"),
        num(k.return_pressure_kpa, "kPa"),
        num(k.delta_pressure_kpa, "kPa"),
        k.coolant_used.density_kg_per_m3,
        k.coolant_used.specific_heat_kj_per_kg_k,
        k.coolant_used.source,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn args(argv: &[&str]) -> DiscoverArgs {
        let full: Vec<&str> = ["hallmark", "facility", "discover"]
            .iter()
            .chain(argv)
            .copied()
            .collect();
        match Cli::try_parse_from(full).unwrap().command {
            Command::Facility(FacilityCommand::Discover(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    /// A one-answer-per-connection HTTP server on loopback serving `routes` (path → JSON).
    async fn serve(routes: HashMap<&'static str, Value>) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes = std::sync::Arc::new(routes);
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("");
                    let (status, body) = match routes.get(path) {
                        Some(v) => ("200 OK", v.to_string()),
                        None => ("404 Not Found", "{}".to_string()),
                    };
                    let reply = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, task)
    }

    fn hall() -> HashMap<&'static str, Value> {
        let id = |p: &str| json!({"@odata.id": format!("/redfish/v1{p}")});
        HashMap::from([
            (
                "/redfish/v1/",
                json!({"PowerEquipment": id("/PowerEquipment"), "ThermalEquipment": id("/ThermalEquipment"), "Chassis": id("/Chassis")}),
            ),
            (
                "/redfish/v1/PowerEquipment",
                json!({"RackPDUs": id("/RackPDUs")}),
            ),
            (
                "/redfish/v1/RackPDUs",
                json!({"Members": [id("/RackPDUs/1")]}),
            ),
            (
                "/redfish/v1/RackPDUs/1",
                json!({"Name": "pdu", "Metrics": id("/RackPDUs/1/Metrics")}),
            ),
            (
                "/redfish/v1/RackPDUs/1/Metrics",
                json!({"PowerWatts": {"Reading": 6438}}),
            ),
            ("/redfish/v1/ThermalEquipment", json!({"CDUs": id("/CDUs")})),
            ("/redfish/v1/CDUs", json!({"Members": [id("/CDUs/1")]})),
            (
                "/redfish/v1/CDUs/1",
                json!({"SecondaryCoolantConnectors": id("/CDUs/1/S")}),
            ),
            (
                "/redfish/v1/CDUs/1/S",
                json!({"Members": [id("/CDUs/1/S/1")]}),
            ),
            (
                "/redfish/v1/CDUs/1/S/1",
                json!({"SupplyTemperatureCelsius": {"Reading": 30}, "ReturnTemperatureCelsius": {"Reading": 45}, "FlowLitersPerMinute": {"Reading": 100}, "HeatRemovedkW": {"Reading": 100}}),
            ),
            (
                "/redfish/v1/Chassis",
                json!({"Members": [id("/Chassis/n1")]}),
            ),
            (
                "/redfish/v1/Chassis/n1",
                json!({"EnvironmentMetrics": id("/Chassis/n1/Env")}),
            ),
            (
                "/redfish/v1/Chassis/n1/Env",
                json!({"PowerWatts": {"Reading": 10200}}),
            ),
        ])
    }

    #[tokio::test]
    async fn json_carries_the_fields_of_issue_10_and_null_for_unmeasured() {
        let (url, task) = serve(hall()).await;
        let inv = walk(&args(&[&url, "--json"]), |_| None).await.unwrap();
        let v = serde_json::to_value(&inv).unwrap();
        let pdu = &v["pdus"][0];
        assert!(pdu["uri"]
            .as_str()
            .unwrap()
            .ends_with("/redfish/v1/RackPDUs/1"));
        assert_eq!(
            (pdu["power_w"].as_f64(), &pdu["energy_kwh"]),
            (Some(6438.0), &Value::Null)
        );
        let c = &v["cdus"][0]["connectors"][0];
        assert!(v["cdus"][0]["uri"].is_string());
        for k in [
            "supply_temp_c",
            "return_temp_c",
            "flow_lpm",
            "heat_removed_kw",
            "computed_heat_kw",
        ] {
            assert!(c[k].is_number(), "{k}: {c}");
        }
        // No coolant stated: the 25 % propylene-glycol default, said so: 1020 · 3.93 · 100/60000 · 15.
        assert!(
            (c["computed_heat_kw"].as_f64().unwrap() - 1020.0 * 3.93 * 100.0 / 60_000.0 * 15.0)
                .abs()
                < 1e-9
        );
        assert!(c["coolant_used"]["source"]
            .as_str()
            .unwrap()
            .starts_with("default: 25 % propylene glycol"));
        assert_eq!(v["chassis"][0]["power_w"].as_f64(), Some(10200.0));
        let f = v["findings"].as_array().unwrap();
        let missing = f
            .iter()
            .find(|f| f["kind"] == "missing_reading")
            .expect("energy is missing");
        assert!(
            missing["uri"]
                .as_str()
                .unwrap()
                .ends_with("/RackPDUs/1/Metrics")
                && missing["values"].is_object()
        );
        let text = render(&inv);
        assert!(text.contains("power 6438 W, energy - kWh"), "{text}");
        assert!(text.contains("missing_reading"), "{text}");
        task.abort();
    }

    #[tokio::test]
    async fn errors_name_the_service_and_the_fix() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = format!("{:#}", walk(&args(&[&url]), |_| None).await.unwrap_err());
        assert!(
            e.contains(&format!("walking the Redfish service at {url}"))
                && e.contains("cannot connect"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            walk(&args(&["https://127.0.0.1:1"]), |_| None)
                .await
                .unwrap_err()
        );
        assert!(e.contains("--ca FILE") && e.contains("--insecure"), "{e}");
        let e = walk(&args(&[&url, "--user", "ops"]), |_| None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--password-file") && e.contains(ENV_PASSWORD),
            "{e}"
        );
        let e = walk(&args(&[&url, "--password-file", "/nonexistent/pw"]), |_| {
            None
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a user"), "{e}");
        let e = walk(&args(&[&url, "--time-limit", "0"]), |_| None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--time-limit"), "{e}");
        assert!(Cli::try_parse_from([
            "hallmark",
            "facility",
            "discover",
            &url,
            "--ca",
            "x.pem",
            "--insecure"
        ])
        .is_err());
    }

    #[tokio::test]
    async fn credentials_come_from_the_environment_and_stay_hidden() {
        let env = |k: &str| match k {
            ENV_USER => Some("ops".to_string()),
            ENV_PASSWORD => Some("pa55word".to_string()),
            _ => None,
        };
        let c = credentials(&args(&["http://x"]), env).unwrap().unwrap();
        assert_eq!(c.user, "ops");
        assert!(!format!("{c:?}").contains("pa55word"));
        assert!(credentials(&args(&["http://x"]), |_| None)
            .unwrap()
            .is_none());
    }
}
