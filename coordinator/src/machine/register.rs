//! Registration: a connection's Hello checked against its certificate, the protocol version, the
//! bounds of its inventory and software list, the probes already registered and the fabric's
//! address rules, then answered with a Welcome or a refusal (one log line on the coordinator, a
//! clear reason on the probe).

use super::*;

impl Coordinator {
    pub(super) fn on_hello(&mut self, conn: ConnId, hello: Hello, now: i64) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            return self.refuse_version(conn, hello.protocol_version);
        }
        if hello.inventory.len() > MAX_DEVICES_PER_NODE {
            return self.protocol_error(
                conn,
                format!(
                    "the Hello lists {} devices; a node may have at most {MAX_DEVICES_PER_NODE}",
                    hello.inventory.len()
                ),
            );
        }
        if let Some(error) = hallmark_protocol::check_software(&hello.software) {
            return self.protocol_error(conn, error);
        }
        if hello.node_id != c.certificate_node {
            let message = format!(
                "the Hello claims node {} but the probe's certificate was issued to node {}; \
                 start the probe with --node {} or issue a certificate for {} with `hallmark certs issue`",
                hello.node_id, c.certificate_node, c.certificate_node, hello.node_id
            );
            let reason = RefusalReason::NodeIdMismatch {
                claimed: hello.node_id.to_string(),
                certificate: c.certificate_node.to_string(),
            };
            return self.refuse(conn, reason, message);
        }
        if let Some((old_conn, existing)) = self.probes.get(&hello.node_id) {
            if existing.instance_id == hello.instance_id {
                // The same probe process on a new connection: its old one is dead and this side
                // has not noticed yet (the idle timeout). The new connection replaces it.
                let old_conn = *old_conn;
                self.out.closes.push_back((
                    old_conn,
                    Close {
                        code: close_code::DONE,
                        reason: "replaced by a new connection of the same probe".into(),
                    },
                ));
                self.on_closed(
                    old_conn,
                    "replaced by a new connection of the same probe",
                    now,
                );
                return self.on_hello(conn, hello, now);
            }
            let message = format!(
                "node {} is already connected from {} (session {}); two probes must not share a \
                 node id — stop the other probe or give this one its own id and certificate",
                hello.node_id, existing.remote, existing.session_id
            );
            let reason = RefusalReason::DuplicateNode {
                node_id: hello.node_id.to_string(),
            };
            return self.refuse(conn, reason, message);
        }
        let session_id = self.next_session;
        self.next_session += 1;
        let data_plane =
            match data_plane_addr(hello.data_plane, &c.remote, &self.config.fabric_subnets) {
                Ok(d) => d,
                Err((reason, message)) => return self.refuse(conn, reason, message),
            };
        let record = ProbeRecord {
            node_id: hello.node_id.clone(),
            labels: hello.labels,
            inventory: hello.inventory,
            backend: hello.backend,
            hallmark_version: hello.hallmark_version,
            instance_id: hello.instance_id,
            session_id,
            remote: c.remote.clone(),
            registered_at_ns: now,
            clock: None,
            data_plane,
            role: hello.role,
            software: hello.software,
        };
        self.out.transmits.push_back((
            conn,
            CoordinatorMessage::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                coordinator_version: self.config.version.clone(),
                session_id,
                dead_man_ms: self.config.dead_man_ms,
            }),
        ));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Registered {
                node_id: hello.node_id.clone(),
                clock: ClockSync::new(self.config.clock_sync, now),
            };
        }
        self.retime(conn);
        if let Some((_, replaced)) = self
            .probes
            .insert(hello.node_id.clone(), (conn, record.clone()))
        {
            self.clocked_nodes = self
                .clocked_nodes
                .saturating_sub(usize::from(counts_as_clocked(&replaced)));
        }
        self.out.events.push_back(Event::Registered(record));
        if !self.run_instances.contains_key(&hello.node_id) {
            self.rejoin_resumed(&hello.node_id, conn, hello.instance_id, now);
            if self.run.as_ref().is_some_and(|r| r.is_collecting()) {
                self.handle_timeout(now);
                return;
            }
        }
        if let Some(run) = self.run.as_mut() {
            match self.run_instances.get(&hello.node_id) {
                Some(&i) if i == hello.instance_id => {
                    run.on_registered(&hello.node_id, conn, now, &mut self.out)
                }
                Some(_) => self.probe_error(
                    hello.node_id.clone(),
                    false,
                    "came back as a new probe process during the run: its schedule and \
                     telemetry started over, so it stays out of this run"
                        .into(),
                ),
                None => {}
            }
        }
        // Start the first clock-sync burst right away.
        self.handle_timeout(now);
    }

    pub(super) fn refuse_version(&mut self, conn: ConnId, offered: u16) {
        let message = format!(
            "the probe speaks protocol version {offered} but this coordinator speaks version \
             {PROTOCOL_VERSION}; run the same hallmark release on the coordinator and every probe"
        );
        let reason = RefusalReason::ProtocolVersion {
            offered,
            supported: PROTOCOL_VERSION,
        };
        self.refuse(conn, reason, message);
    }

    pub(super) fn refuse(&mut self, conn: ConnId, reason: RefusalReason, message: String) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.state = ConnState::Closing;
        self.timers.set(conn, None);
        let refusal = Refusal { reason, message };
        self.out
            .transmits
            .push_back((conn, CoordinatorMessage::Refused(refusal.clone())));
        self.out.closes.push_back((
            conn,
            Close {
                code: close_code::REFUSED,
                reason: refusal.message.clone(),
            },
        ));
        self.out.events.push_back(Event::Refused {
            conn,
            certificate_node: c.certificate_node.clone(),
            remote: c.remote.clone(),
            refusal,
        });
    }
}

/// A probe's data-plane address: the one its Hello gives, else its port on the IP its control
/// connection came from (`remote` as the shell formats a socket address). An announced IP other
/// than the control connection's must lie in one of `subnets`; otherwise the Hello is refused.
fn data_plane_addr(
    hello: Option<hallmark_protocol::DataPlaneAddr>,
    remote: &str,
    subnets: &[crate::fabric::FabricSubnet],
) -> Result<Option<std::net::SocketAddr>, (RefusalReason, String)> {
    let Some(dp) = hello else {
        return Ok(None);
    };
    let control = remote.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let ip = match dp.ip {
        Some(ip) if !ip.is_unspecified() => {
            crate::fabric::subnet::check_announced(ip, control, subnets).map_err(|message| {
                let reason = RefusalReason::DataPlaneAddress {
                    announced: ip.to_string(),
                    control: remote.to_string(),
                };
                (reason, message)
            })?;
            ip
        }
        _ => match control {
            Some(ip) => ip,
            None => return Ok(None),
        },
    };
    Ok(Some(std::net::SocketAddr::new(ip, dp.port)))
}
