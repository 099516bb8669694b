//! Property tests of the frame codec over every message of both directions.
//!
//! * every message round-trips, alone and as part of a stream cut into arbitrary chunks;
//! * a truncated frame is reported as truncated, never decoded;
//! * arbitrary and corrupted bytes never panic, and the incremental decoder agrees with a simple
//!   reference model of the framing whatever the chunking;
//! * a frame announced over the limit is refused as soon as its header is complete.
//!
//! Floats are generated from all bit patterns (NaN, infinities, subnormals included), so messages are
//! compared by their encoding (bitwise), and with `PartialEq` as well where they hold no NaN.
//!
//! Case counts are kept modest so that this file runs in seconds in a debug build; set
//! `PROPTEST_CASES` to run more.

use hallmark_protocol::codec::{
    decode_payload, encode_frame_into, peek_hello_version, EncodeError, HEADER_LEN,
};
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::FileFailurePersistence;
use proptest::test_runner::TestRunner;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::ops::Range;

/// Limit used where a test needs a small one.
const SMALL_MAX: usize = 4096;

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    // Failing cases are kept in `codec_props.proptest-regressions` next to this file and replayed first.
    c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    c
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any string, control characters and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect())
}

/// Any f64: the special classes (NaN, ±inf, subnormals, ±0) and raw bit patterns.
fn f64_any() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::ANY | prop::num::f64::SIGNALING_NAN,
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn f32_any() -> impl Strategy<Value = f32> {
    prop_oneof![
        prop::num::f32::ANY | prop::num::f32::SIGNALING_NAN,
        any::<u32>().prop_map(f32::from_bits),
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    "[A-Za-z0-9_][A-Za-z0-9._-]{0,63}".prop_map(|s| NodeId::new(s).expect("valid by construction"))
}

/// Strings that `NodeId::new` must refuse.
fn invalid_node_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[.-][A-Za-z0-9._-]{0,20}",
        "[A-Za-z0-9_]{0,10}[^A-Za-z0-9._-][A-Za-z0-9._-]{0,10}",
        "[A-Za-z0-9_][A-Za-z0-9._-]{64,80}",
    ]
}

fn labels() -> impl Strategy<Value = Labels> {
    (text(), text(), text()).prop_map(|(hall, row, rack)| Labels { hall, row, rack })
}

fn device_kind() -> impl Strategy<Value = DeviceKind> {
    prop_oneof![
        Just(DeviceKind::Gpu),
        Just(DeviceKind::CpuSocket),
        Just(DeviceKind::SimulatedGpu),
    ]
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    (
        any::<u16>(),
        device_kind(),
        text(),
        text(),
        option::of(text()),
        option::of(any::<u64>()),
        option::of(f64_any()),
        option::of(f64_any()),
        option::of(f64_any()),
        option::of(f64_any()),
        option::of(f64_any()),
    )
        .prop_map(
            |(
                index,
                kind,
                model,
                uuid,
                serial,
                memory_bytes,
                power_limit_w,
                idle_power_w,
                slowdown_temp_c,
                shutdown_temp_c,
                max_operating_temp_c,
            )| DeviceInfo {
                index,
                kind,
                model,
                uuid,
                serial,
                memory_bytes,
                power_limit_w,
                idle_power_w,
                slowdown_temp_c,
                shutdown_temp_c,
                max_operating_temp_c,
            },
        )
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        node_id(),
        labels(),
        vec(device_info(), 0..3),
        text(),
        text(),
        any::<u64>(),
        option::of(data_plane_addr()),
        prop_oneof![Just(ProbeRole::Node), Just(ProbeRole::Facility)],
        vec(software_version(), 0..3),
    )
        .prop_map(
            |(
                protocol_version,
                node_id,
                labels,
                inventory,
                backend,
                hallmark_version,
                instance_id,
                data_plane,
                role,
                software,
            )| {
                Hello {
                    protocol_version,
                    node_id,
                    labels,
                    inventory,
                    backend,
                    hallmark_version,
                    instance_id,
                    data_plane,
                    role,
                    software,
                }
            },
        )
}

fn software_version() -> impl Strategy<Value = SoftwareVersion> {
    (text(), text()).prop_map(|(name, version)| SoftwareVersion { name, version })
}

fn socket_addr() -> impl Strategy<Value = std::net::SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| (ip, port).into()),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| (ip, port).into()),
    ]
}

fn data_plane_addr() -> impl Strategy<Value = DataPlaneAddr> {
    (option::of(socket_addr()), any::<u16>()).prop_map(|(a, port)| DataPlaneAddr {
        ip: a.map(|a| a.ip()),
        port,
    })
}

fn collective_op() -> impl Strategy<Value = CollectiveOp> {
    (0usize..5).prop_map(|i| CollectiveOp::ALL[i])
}

fn collective_algorithm() -> impl Strategy<Value = CollectiveAlgorithm> {
    prop_oneof![
        Just(CollectiveAlgorithm::Auto),
        Just(CollectiveAlgorithm::Ring),
        Just(CollectiveAlgorithm::LatencyOptimal),
        Just(CollectiveAlgorithm::Nccl),
    ]
}

fn fabric_phase() -> impl Strategy<Value = FabricPhase> {
    let params = prop_oneof![
        any::<u32>().prop_map(|packet_bytes| FabricParams::Latency(LatencyParams { packet_bytes })),
        (
            vec(collective_op(), 0..6),
            any::<u64>(),
            any::<u64>(),
            collective_algorithm(),
            option::of(any::<u32>()),
            (0usize..3).prop_map(|i| {
                [
                    CollectiveTransport::Auto,
                    CollectiveTransport::DataPlane,
                    CollectiveTransport::Nccl,
                ][i]
            }),
        )
            .prop_map(
                |(ops, min_bytes, max_bytes, algorithm, iterations, transport)| {
                    FabricParams::Collective(CollectiveParams {
                        ops,
                        min_bytes,
                        max_bytes,
                        algorithm,
                        transport,
                        iterations,
                    })
                },
            ),
    ];
    (
        vec(
            (any::<u32>(), any::<[u8; 32]>()).prop_map(|(rank, key)| PeerKey {
                rank,
                key: PairKey(key),
            }),
            0..5,
        ),
        vec(
            (node_id(), socket_addr()).prop_map(|(node_id, addr)| FabricMember { node_id, addr }),
            0..5,
        ),
        params,
        option::of(
            (vec(any::<u8>(), 0..130), vec(any::<u32>(), 0..4))
                .prop_map(|(unique_id, gpus)| NcclSetup { unique_id, gpus }),
        ),
    )
        .prop_map(|(keys, members, params, nccl)| FabricPhase {
            keys,
            members,
            params,
            nccl,
        })
}

fn fabric_report() -> impl Strategy<Value = FabricReport> {
    let pair = (
        node_id(),
        node_id(),
        any::<u64>(),
        any::<u64>(),
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(src, dst, sent, lost, rtt_ns_hist)| LatencyPair {
            src,
            dst,
            sent,
            lost,
            rtt_ns_hist,
        });
    let result = (
        collective_op(),
        collective_algorithm(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(op, algorithm, size_bytes, iterations, mean_ns, wrong_elements, world)| {
                CollectiveResult {
                    op,
                    algorithm,
                    size_bytes,
                    iterations,
                    world,
                    mean_ns,
                    wrong_elements,
                }
            },
        );
    let fault =
        (option::of(node_id()), text()).prop_map(|(peer, message)| FabricFault { peer, message });
    (vec(pair, 0..3), vec(result, 0..3), vec(fault, 0..2)).prop_map(
        |(latency, collectives, faults)| FabricReport {
            latency,
            collectives,
            faults,
        },
    )
}

fn clock_ping() -> impl Strategy<Value = ClockPing> {
    (any::<u32>(), any::<i64>()).prop_map(|(seq, t1)| ClockPing { seq, t1 })
}

fn clock_pong() -> impl Strategy<Value = ClockPong> {
    (any::<u32>(), any::<i64>(), any::<i64>(), any::<i64>())
        .prop_map(|(seq, t1, t2, t3)| ClockPong { seq, t1, t2, t3 })
}

fn clock_estimate() -> impl Strategy<Value = ClockEstimate> {
    (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
        |(offset_ns, uncertainty_ns, rtt_ns, measured_at_ns)| ClockEstimate {
            offset_ns,
            uncertainty_ns,
            rtt_ns,
            measured_at_ns,
        },
    )
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        any::<i64>(),
        any::<u16>(),
        option::of(f32_any()),
        option::of(f64_any()),
        option::of(f32_any()),
        option::of(f32_any()),
        option::of(any::<u32>()),
        option::of(f32_any()),
        any::<u64>(),
    )
        .prop_map(
            |(
                t_ns,
                device,
                power_w,
                energy_j,
                gpu_temp_c,
                mem_temp_c,
                sm_clock_mhz,
                util_pct,
                throttle_reasons,
            )| Sample {
                t_ns,
                device,
                power_w,
                energy_j,
                gpu_temp_c,
                mem_temp_c,
                sm_clock_mhz,
                util_pct,
                throttle_reasons,
            },
        )
}

fn telemetry_batch() -> impl Strategy<Value = TelemetryBatch> {
    (
        any::<u64>(),
        vec((any::<i64>(), f32_any()), 0..4),
        vec(sample(), 0..4),
    )
        .prop_map(|(seq, node_power_w, samples)| TelemetryBatch {
            gaps: Vec::new(),
            seq,
            node_power_w,
            samples,
        })
}

fn device_result() -> impl Strategy<Value = DeviceResult> {
    (
        any::<u16>(),
        option::of(f64_any()),
        option::of(f64_any()),
        any::<u64>(),
    )
        .prop_map(
            |(device, gflops, mem_bandwidth_gbps, wrong_elements)| DeviceResult {
                device,
                gflops,
                mem_bandwidth_gbps,
                wrong_elements,
            },
        )
}

fn phase_report() -> impl Strategy<Value = PhaseReport> {
    (
        any::<u32>(),
        any::<i64>(),
        option::of(text()),
        vec(device_result(), 0..4),
        option::of(fabric_report()),
    )
        .prop_map(
            |(phase_id, ended_at_ns, stopped_early, devices, fabric)| PhaseReport {
                phase_id,
                ended_at_ns,
                stopped_early,
                devices,
                fabric,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::UnexpectedMessage),
        Just(ErrorCode::Device),
        Just(ErrorCode::Safety),
        Just(ErrorCode::Internal),
    ]
}

fn error_report() -> impl Strategy<Value = ErrorReport> {
    (error_code(), text()).prop_map(|(code, message)| ErrorReport { code, message })
}

fn welcome() -> impl Strategy<Value = Welcome> {
    (any::<u16>(), text(), any::<u64>(), any::<u32>()).prop_map(
        |(protocol_version, coordinator_version, session_id, dead_man_ms)| Welcome {
            protocol_version,
            coordinator_version,
            session_id,
            dead_man_ms,
        },
    )
}

fn refusal_reason() -> impl Strategy<Value = RefusalReason> {
    prop_oneof![
        (any::<u16>(), any::<u16>())
            .prop_map(|(offered, supported)| RefusalReason::ProtocolVersion { offered, supported }),
        (text(), text()).prop_map(|(claimed, certificate)| RefusalReason::NodeIdMismatch {
            claimed,
            certificate
        }),
        text().prop_map(|node_id| RefusalReason::DuplicateNode { node_id }),
        Just(RefusalReason::ExpectedHello),
        text().prop_map(|node_id| RefusalReason::NotExpected { node_id }),
        (text(), text()).prop_map(|(announced, control)| RefusalReason::DataPlaneAddress {
            announced,
            control
        }),
    ]
}

fn refusal() -> impl Strategy<Value = Refusal> {
    (refusal_reason(), text()).prop_map(|(reason, message)| Refusal { reason, message })
}

fn workload() -> impl Strategy<Value = Workload> {
    prop_oneof![
        Just(Workload::Burn),
        Just(Workload::Idle),
        Just(Workload::Latency),
        Just(Workload::Collective),
        Just(Workload::MemoryBandwidth),
        Just(Workload::TargetPower)
    ]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        f64_any().prop_map(|level| Pattern::Steady { level }),
        (f64_any(), f64_any()).prop_map(|(from, to)| Pattern::Ramp { from, to }),
        (vec(f64_any(), 0..5), any::<u64>())
            .prop_map(|(levels, step_ms)| Pattern::Steps { levels, step_ms }),
        (f64_any(), f64_any(), any::<u64>(), f64_any()).prop_map(|(low, high, period_ms, duty)| {
            Pattern::Square {
                low,
                high,
                period_ms,
                duty,
            }
        }),
        (f64_any(), f64_any(), f64_any(), f64_any()).prop_map(|(low, high, start_hz, end_hz)| {
            Pattern::Sweep {
                low,
                high,
                start_hz,
                end_hz,
            }
        }),
    ]
}

fn phase_start() -> impl Strategy<Value = PhaseStart> {
    (
        any::<u32>(),
        text(),
        workload(),
        pattern(),
        any::<i64>(),
        any::<u64>(),
        f64_any(),
        (option::of(fabric_phase()), option::of(f64_any())),
    )
        .prop_map(
            |(
                phase_id,
                name,
                workload,
                pattern,
                start_at_ns,
                duration_ms,
                sample_hz,
                (fabric, target_power_w),
            )| {
                PhaseStart {
                    phase_id,
                    name,
                    workload,
                    pattern,
                    start_at_ns,
                    duration_ms,
                    sample_hz,
                    fabric,
                    target_power_w,
                }
            },
        )
}

fn probe_message() -> impl Strategy<Value = ProbeMessage> {
    prop_oneof![
        hello().prop_map(ProbeMessage::Hello),
        clock_pong().prop_map(ProbeMessage::ClockPong),
        (any::<u32>(), any::<i64>()).prop_map(|(phase_id, actual_start_ns)| {
            ProbeMessage::PhaseStarted {
                phase_id,
                actual_start_ns,
            }
        }),
        telemetry_batch().prop_map(ProbeMessage::Telemetry),
        phase_report().prop_map(ProbeMessage::PhaseReport),
        error_report().prop_map(ProbeMessage::Error),
        (
            any::<u32>(),
            prop_oneof![vec(any::<u8>(), 0..130).prop_map(Ok), text().prop_map(Err)]
        )
            .prop_map(|(phase_id, nccl_unique_id)| ProbeMessage::FabricPrepared {
                phase_id,
                nccl_unique_id
            }),
        facility_batch().prop_map(ProbeMessage::Facility),
    ]
}

fn facility_subject() -> impl Strategy<Value = FacilitySubject> {
    prop_oneof![
        Just(FacilitySubject::Hall),
        text().prop_map(FacilitySubject::Row),
        text().prop_map(FacilitySubject::Rack),
        text().prop_map(FacilitySubject::Node),
    ]
}

fn facility_reading() -> impl Strategy<Value = FacilityReading> {
    (
        (
            text(),
            prop_oneof![
                Just(SourceKind::Pdu),
                Just(SourceKind::Cdu),
                Just(SourceKind::Chassis)
            ],
            facility_subject(),
            text(),
            (0usize..FacilityQuantity::ALL.len()).prop_map(|i| FacilityQuantity::ALL[i]),
            text(),
        ),
        (
            any::<i64>(),
            option::of(f64_any()),
            option::of(any::<i64>()),
            option::of(any::<u32>()),
            option::of(text()),
        ),
    )
        .prop_map(
            |(
                (source, kind, subject, point, quantity, uri),
                (t_ns, value, device_time_ns, latency_us, note),
            )| FacilityReading {
                source,
                kind,
                subject,
                point,
                quantity,
                uri,
                t_ns,
                value,
                device_time_ns,
                latency_us,
                note,
            },
        )
}

fn facility_batch() -> impl Strategy<Value = FacilityBatch> {
    (any::<u64>(), vec(facility_reading(), 0..4))
        .prop_map(|(seq, readings)| FacilityBatch { seq, readings })
}

fn coordinator_message() -> impl Strategy<Value = CoordinatorMessage> {
    prop_oneof![
        welcome().prop_map(CoordinatorMessage::Welcome),
        refusal().prop_map(CoordinatorMessage::Refused),
        clock_ping().prop_map(CoordinatorMessage::ClockPing),
        clock_estimate().prop_map(CoordinatorMessage::ClockEstimate),
        phase_start().prop_map(CoordinatorMessage::PhaseStart),
        any::<u32>().prop_map(|phase_id| CoordinatorMessage::PhaseStop { phase_id }),
        text().prop_map(|reason| CoordinatorMessage::Abort { reason }),
        any::<u64>().prop_map(|seq| CoordinatorMessage::Ack { seq }),
        any::<i64>().prop_map(|now_ns| CoordinatorMessage::Heartbeat { now_ns }),
        error_report().prop_map(CoordinatorMessage::Error),
        any::<u32>().prop_map(|phase_id| CoordinatorMessage::FabricPrepare { phase_id }),
    ]
}

/// Bytes that look like a stream of frames, more or less: valid frames, frames with random payloads
/// of a plausible length, empty frames, oversized headers and plain noise, concatenated.
fn frame_soup() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![
        3 => vec(any::<u8>(), 0..48),
        3 => vec(any::<u8>(), 0..48).prop_map(|p| with_header(p.len() as u32, &p)),
        1 => (0u32..64, vec(any::<u8>(), 0..48)).prop_map(|(len, p)| with_header(len, &p)),
        2 => probe_message().prop_map(|m| encode_frame(&m).unwrap()),
        2 => coordinator_message().prop_map(|m| encode_frame(&m).unwrap()),
        1 => Just(0u32.to_be_bytes().to_vec()),
        1 => (SMALL_MAX as u32 + 1..=u32::MAX).prop_map(|len| len.to_be_bytes().to_vec()),
    ];
    prop_oneof![
        vec(any::<u8>(), 0..256),
        vec(segment, 0..6).prop_map(|segs| segs.concat()),
    ]
}

fn with_header(len: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The message types under test.
trait Msg: Serialize + DeserializeOwned + PartialEq + Debug + Clone {}
impl<M: Serialize + DeserializeOwned + PartialEq + Debug + Clone> Msg for M {}

/// `got` is `want`, bit for bit (so that NaNs compare), and `==` where `want` holds no NaN.
fn check_same<M: Msg>(got: &M, want: &M) -> Result<(), TestCaseError> {
    let (g, w) = (
        postcard::to_stdvec(got).unwrap(),
        postcard::to_stdvec(want).unwrap(),
    );
    prop_assert_eq!(&g, &w, "messages differ: {:?} vs {:?}", got, want);
    #[allow(clippy::eq_op)]
    if want == want {
        prop_assert_eq!(got, want);
    }
    Ok(())
}

/// A decoded message re-encodes to something that decodes to the same message.
fn check_reencodes<M: Msg>(m: &M) -> Result<(), TestCaseError> {
    let frame = encode_frame(m).unwrap();
    let again: M = decode_frame(&frame)
        .map_err(|e| TestCaseError::fail(format!("re-encoded {m:?} does not decode: {e}")))?;
    check_same(&again, m)
}

/// Splits `wire` at the given cut points (in any order, duplicates allowed).
fn chunks<'a>(wire: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

/// What a decoder reports, in order.
#[derive(Debug)]
struct Outcome<M> {
    /// One entry per frame: its message or why it could not be decoded. A `FrameTooLarge` ends it.
    events: Vec<Result<M, DecodeError>>,
    /// `finish()` at the end, when the stream was not refused.
    finish: Option<Result<(), DecodeError>>,
    /// Model: the byte that completes the header of a refused frame. Decoder: the bytes of the push
    /// during which the refusal came.
    refused: Option<Range<usize>>,
}

/// Reference model of the framing: reads the whole stream at once.
fn model<M: Msg>(wire: &[u8], max: usize) -> Outcome<M> {
    let mut events = Vec::new();
    let mut pos = 0;
    while wire.len() - pos >= HEADER_LEN {
        let len = u32::from_be_bytes(wire[pos..pos + HEADER_LEN].try_into().unwrap()) as usize;
        if len > max {
            events.push(Err(DecodeError::FrameTooLarge { len, max }));
            return Outcome {
                events,
                finish: None,
                refused: Some(pos + HEADER_LEN - 1..pos + HEADER_LEN),
            };
        }
        let end = pos + HEADER_LEN + len;
        if end > wire.len() {
            break;
        }
        events.push(decode_payload::<M>(&wire[pos + HEADER_LEN..end]));
        pos = end;
    }
    let have = wire.len() - pos;
    let finish = if have == 0 {
        Ok(())
    } else if have < HEADER_LEN {
        Err(DecodeError::Truncated {
            have,
            need: HEADER_LEN,
        })
    } else {
        let len = u32::from_be_bytes(wire[pos..pos + HEADER_LEN].try_into().unwrap()) as usize;
        Err(DecodeError::Truncated {
            have,
            need: HEADER_LEN + len,
        })
    };
    Outcome {
        events,
        finish: Some(finish),
        refused: None,
    }
}

/// Feeds `parts` to a [`FrameDecoder`], taking every complete message after each push.
fn drive<M: Msg>(parts: &[&[u8]], max: usize) -> Result<Outcome<M>, TestCaseError> {
    let wire = parts.concat();
    // The length announced by the frame at `pos`, once its header is in `wire[..end]`.
    let announced = |pos: usize, end: usize| {
        (end - pos >= HEADER_LEN)
            .then(|| u32::from_be_bytes(wire[pos..pos + HEADER_LEN].try_into().unwrap()) as usize)
    };
    let mut d = FrameDecoder::new(max);
    let mut events = Vec::new();
    let mut pushed = 0;
    // Start of the first frame not yet taken.
    let mut taken = 0;
    for part in parts {
        let start = pushed;
        pushed += part.len();
        // `push` itself refuses bytes of a frame announced over the limit.
        let oversized = announced(taken, pushed).is_some_and(|len| len > max);
        let refused = match d.push(part) {
            Err(e) => {
                prop_assert!(oversized, "push refused {:?} for no reason: {:?}", part, e);
                Some(e)
            }
            Ok(()) => {
                prop_assert!(
                    !oversized,
                    "push took bytes {}..{} of a frame announced over the limit",
                    start,
                    pushed
                );
                loop {
                    let r = d.next_message::<M>();
                    if let Ok(Some(_))
                    | Err(DecodeError::Malformed { .. })
                    | Err(DecodeError::EmptyFrame)
                    | Err(DecodeError::TrailingBytes { .. }) = r
                    {
                        taken += HEADER_LEN + announced(taken, pushed).unwrap();
                    }
                    match r {
                        Ok(Some(m)) => events.push(Ok(m)),
                        Ok(None) => break None,
                        Err(e @ DecodeError::FrameTooLarge { .. }) => break Some(e),
                        // The frame was consumed: carry on with the next one.
                        Err(e) => events.push(Err(e)),
                    }
                }
            }
        };
        if let Some(e) = refused {
            prop_assert!(
                matches!(e, DecodeError::FrameTooLarge { .. }),
                "only an oversized frame may stop the stream, got {:?}",
                e
            );
            events.push(Err(e.clone()));
            // Once refused, the decoder stays refused and buffers nothing more.
            let before = d.buffered();
            prop_assert_eq!(d.push(&[0u8; 16]), Err(e.clone()));
            prop_assert_eq!(d.buffered(), before);
            prop_assert_eq!(d.next_message::<M>(), Err(e));
            return Ok(Outcome {
                events,
                finish: None,
                refused: Some(start..pushed),
            });
        }
    }
    Ok(Outcome {
        events,
        finish: Some(d.finish()),
        refused: None,
    })
}

/// The decoder, fed `wire` in the chunks given by `cuts`, reports exactly what the model reads, and
/// refuses an oversized frame while the chunk that completes its header is being pushed.
fn check_against_model<M: Msg>(
    wire: &[u8],
    cuts: &[Index],
    max: usize,
) -> Result<Outcome<M>, TestCaseError> {
    let want = model::<M>(wire, max);
    let parts = chunks(wire, cuts);
    let got = drive::<M>(&parts, max)?;
    prop_assert_eq!(
        got.events.len(),
        want.events.len(),
        "{:?} vs {:?}",
        got,
        want
    );
    for (g, w) in got.events.iter().zip(&want.events) {
        match (g, w) {
            (Ok(g), Ok(w)) => check_same(g, w)?,
            (Err(g), Err(w)) => prop_assert_eq!(g, w),
            _ => prop_assert!(false, "decoder gave {:?}, model {:?}", g, w),
        }
    }
    prop_assert_eq!(&got.finish, &want.finish);
    match (&got.refused, &want.refused) {
        (None, None) => {}
        (Some(chunk), Some(header)) => prop_assert!(
            chunk.start < header.end && header.end <= chunk.end,
            "refused while pushing bytes {:?}, but the header ended at {}",
            chunk,
            header.end
        ),
        (g, w) => prop_assert!(false, "refused in {:?}, model {:?}", g, w),
    }
    for ev in got.events.iter().flatten() {
        check_reencodes(ev)?;
    }
    Ok(got)
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn check_round_trip<M: Msg>(msg: &M, prefix: &[u8]) -> Result<(), TestCaseError> {
    let frame = encode_frame(msg).unwrap();
    let len = u32::from_be_bytes(frame[..HEADER_LEN].try_into().unwrap()) as usize;
    prop_assert_eq!(len, frame.len() - HEADER_LEN, "length prefix");
    prop_assert!(len > 0, "a message never encodes to an empty payload");

    check_same(&decode_frame::<M>(&frame).unwrap(), msg)?;
    check_same(&decode_payload::<M>(&frame[HEADER_LEN..]).unwrap(), msg)?;

    // Appending keeps what was already in the buffer and writes the same frame.
    let mut out = prefix.to_vec();
    encode_frame_into(msg, MAX_FRAME_LEN, &mut out).unwrap();
    prop_assert_eq!(&out[..prefix.len()], prefix);
    prop_assert_eq!(&out[prefix.len()..], &frame[..]);

    // The limit is exact, and a refused frame leaves the buffer as it was.
    let mut out = prefix.to_vec();
    encode_frame_into(msg, len, &mut out).unwrap();
    prop_assert_eq!(&out[prefix.len()..], &frame[..]);
    let mut out = prefix.to_vec();
    prop_assert_eq!(
        encode_frame_into(msg, len - 1, &mut out),
        Err(EncodeError::FrameTooLarge { len, max: len - 1 })
    );
    prop_assert_eq!(&out[..], prefix);

    // So is the decoder's: a frame of exactly the limit is taken, one byte over is refused.
    let mut d = FrameDecoder::new(len);
    d.push(&frame).unwrap();
    check_same(&d.next_message::<M>().unwrap().unwrap(), msg)?;
    let mut d = FrameDecoder::new(len - 1);
    let too_large = DecodeError::FrameTooLarge { len, max: len - 1 };
    prop_assert_eq!(d.push(&frame), Err(too_large.clone()));
    prop_assert_eq!(d.next_message::<M>(), Err(too_large));

    // One byte more or less is never the same frame.
    let mut padded = frame.clone();
    padded.push(0);
    prop_assert!(decode_frame::<M>(&padded).is_err());
    let mut payload = frame[HEADER_LEN..].to_vec();
    payload.push(0);
    prop_assert_eq!(
        decode_payload::<M>(&payload),
        Err(DecodeError::TrailingBytes {
            len: len + 1,
            extra: 1
        })
    );
    Ok(())
}

fn check_stream<M: Msg>(msgs: &[M], cuts: &[Index]) -> Result<(), TestCaseError> {
    let mut wire = Vec::new();
    for m in msgs {
        encode_frame_into(m, MAX_FRAME_LEN, &mut wire).unwrap();
    }
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    let mut got = Vec::new();
    for part in chunks(&wire, cuts) {
        d.push(part).unwrap();
        while let Some(m) = d.next_message::<M>().unwrap() {
            got.push(m);
        }
    }
    prop_assert_eq!(d.buffered(), 0);
    prop_assert_eq!(d.finish(), Ok(()));
    prop_assert_eq!(got.len(), msgs.len());
    for (g, w) in got.iter().zip(msgs) {
        check_same(g, w)?;
    }
    // And the model agrees.
    let out = check_against_model::<M>(&wire, cuts, MAX_FRAME_LEN)?;
    prop_assert!(out.events.iter().all(|e| e.is_ok()));
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn probe_messages_round_trip(msg in probe_message(), prefix in vec(any::<u8>(), 0..8)) {
        check_round_trip(&msg, &prefix)?;
        // Hello keeps its version readable across protocol versions; nothing else looks like one.
        let frame = encode_frame(&msg).unwrap();
        let want = match &msg {
            ProbeMessage::Hello(h) => Some(h.protocol_version),
            _ => None,
        };
        prop_assert_eq!(peek_hello_version(&frame[HEADER_LEN..]), want);
    }

    #[test]
    fn coordinator_messages_round_trip(
        msg in coordinator_message(),
        prefix in vec(any::<u8>(), 0..8),
    ) {
        check_round_trip(&msg, &prefix)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn probe_streams_decode_in_any_chunks(
        msgs in vec(probe_message(), 1..8),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        check_stream(&msgs, &cuts)?;
    }

    #[test]
    fn coordinator_streams_decode_in_any_chunks(
        msgs in vec(coordinator_message(), 1..8),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        check_stream(&msgs, &cuts)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

fn check_truncated<M: Msg>(msg: &M, cut: Index, pcut: Index) -> Result<(), TestCaseError> {
    let frame = encode_frame(msg).unwrap();
    let cut = cut.index(frame.len()); // 0..len: always short
    let short = &frame[..cut];
    let need = if cut < HEADER_LEN {
        HEADER_LEN
    } else {
        frame.len()
    };
    let truncated = DecodeError::Truncated { have: cut, need };
    // A decoder that has received nothing is between frames: ending there is fine.
    let finished = if cut == 0 {
        Ok(())
    } else {
        Err(truncated.clone())
    };

    prop_assert_eq!(decode_frame::<M>(short), Err(truncated.clone()));

    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    d.push(short).unwrap();
    prop_assert_eq!(d.next_message::<M>(), Ok(None));
    prop_assert_eq!(d.buffered(), cut);
    prop_assert_eq!(d.finish(), finished);
    // The rest completes the frame.
    d.push(&frame[cut..]).unwrap();
    check_same(&d.next_message::<M>().unwrap().unwrap(), msg)?;
    prop_assert_eq!(d.finish(), Ok(()));

    // A short payload is never a message (postcard encodings are prefix-free).
    let payload = &frame[HEADER_LEN..];
    let pcut = pcut.index(payload.len());
    match decode_payload::<M>(&payload[..pcut]) {
        Err(DecodeError::EmptyFrame) => prop_assert_eq!(pcut, 0),
        Err(DecodeError::Malformed { len, .. }) => prop_assert_eq!(len, pcut),
        other => prop_assert!(false, "{}-byte prefix of {:?} gave {:?}", pcut, msg, other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn truncated_probe_frames_are_truncated(
        msg in probe_message(),
        cut in any::<Index>(),
        pcut in any::<Index>(),
    ) {
        check_truncated(&msg, cut, pcut)?;
    }

    #[test]
    fn truncated_coordinator_frames_are_truncated(
        msg in coordinator_message(),
        cut in any::<Index>(),
        pcut in any::<Index>(),
    ) {
        check_truncated(&msg, cut, pcut)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

fn check_payload<M: Msg>(bytes: &[u8]) -> Result<Option<M>, TestCaseError> {
    match decode_payload::<M>(bytes) {
        Ok(m) => {
            check_reencodes(&m)?;
            Ok(Some(m))
        }
        Err(DecodeError::EmptyFrame) => {
            prop_assert!(bytes.is_empty());
            Ok(None)
        }
        Err(DecodeError::Malformed { len, .. }) => {
            prop_assert_eq!(len, bytes.len());
            Ok(None)
        }
        Err(DecodeError::TrailingBytes { len, extra }) => {
            prop_assert_eq!(len, bytes.len());
            prop_assert!(extra > 0 && extra < len);
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("decode_payload gave {e:?}"))),
    }
}

fn check_hostile(bytes: &[u8], cuts: &[Index], max: usize) -> Result<(), TestCaseError> {
    check_against_model::<ProbeMessage>(bytes, cuts, max)?;
    check_against_model::<CoordinatorMessage>(bytes, cuts, max)?;
    for payload in [bytes, bytes.get(HEADER_LEN..).unwrap_or(&[])] {
        let probe = check_payload::<ProbeMessage>(payload)?;
        check_payload::<CoordinatorMessage>(payload)?;
        let version = peek_hello_version(payload);
        match probe {
            Some(ProbeMessage::Hello(h)) => prop_assert_eq!(version, Some(h.protocol_version)),
            Some(_) => prop_assert_eq!(version, None),
            None => {}
        }
    }
    match decode_frame::<ProbeMessage>(bytes) {
        Ok(m) => check_reencodes(&m)?,
        Err(DecodeError::FrameTooLarge { max, .. }) => prop_assert_eq!(max, MAX_FRAME_LEN),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in frame_soup(),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        check_hostile(&bytes, &cuts, SMALL_MAX)?;
        check_hostile(&bytes, &cuts, MAX_FRAME_LEN)?;
    }

    #[test]
    fn corrupted_frames_never_panic(
        msgs in vec(prop_oneof![
            probe_message().prop_map(|m| encode_frame(&m).unwrap()),
            coordinator_message().prop_map(|m| encode_frame(&m).unwrap()),
        ], 1..4),
        at in any::<Index>(),
        xor in 1u8..=255,
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut wire = msgs.concat();
        let i = at.index(wire.len());
        wire[i] ^= xor;
        check_hostile(&wire, &cuts, SMALL_MAX)?;
        check_hostile(&wire, &cuts, MAX_FRAME_LEN)?;
    }

    #[test]
    fn oversized_frames_are_refused_once_the_header_is_in(
        before in vec(probe_message(), 0..3),
        len in (SMALL_MAX as u32 + 1)..=u32::MAX,
        payload in vec(any::<u8>(), 0..64),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for m in &before {
            encode_frame_into(m, SMALL_MAX, &mut wire).unwrap();
        }
        let header_end = wire.len() + HEADER_LEN;
        wire.extend_from_slice(&len.to_be_bytes());
        wire.extend_from_slice(&payload);

        let out = check_against_model::<ProbeMessage>(&wire, &cuts, SMALL_MAX)?;
        prop_assert_eq!(out.events.len(), before.len() + 1);
        prop_assert_eq!(
            out.events.last().unwrap(),
            &Err(DecodeError::FrameTooLarge { len: len as usize, max: SMALL_MAX })
        );

        // Byte by byte: refused on exactly the last header byte, which is not kept.
        let mut d = FrameDecoder::new(SMALL_MAX);
        for (i, b) in wire.iter().enumerate() {
            let r = d.push(std::slice::from_ref(b));
            while let Ok(Some(_)) = d.next_message::<ProbeMessage>() {}
            if i + 1 < header_end {
                prop_assert_eq!(r, Ok(()));
            } else {
                prop_assert_eq!(
                    r,
                    Err(DecodeError::FrameTooLarge { len: len as usize, max: SMALL_MAX })
                );
                prop_assert_eq!(d.buffered(), HEADER_LEN - 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Node ids on the wire
// ---------------------------------------------------------------------------------------------

/// The wire shape of `ProbeMessage::Hello` with an unchecked node id.
#[derive(serde::Serialize)]
enum RawProbeMessage {
    Hello(RawHello),
}

#[derive(serde::Serialize)]
struct RawHello {
    protocol_version: u16,
    node_id: String,
    labels: Labels,
    inventory: Vec<DeviceInfo>,
    backend: String,
    hallmark_version: String,
    instance_id: u64,
    data_plane: Option<DataPlaneAddr>,
    role: ProbeRole,
    software: Vec<SoftwareVersion>,
}

fn raw_hello(h: &Hello, node_id: String) -> Vec<u8> {
    postcard::to_stdvec(&RawProbeMessage::Hello(RawHello {
        protocol_version: h.protocol_version,
        node_id,
        labels: h.labels.clone(),
        inventory: h.inventory.clone(),
        backend: h.backend.clone(),
        hallmark_version: h.hallmark_version.clone(),
        instance_id: h.instance_id,
        data_plane: h.data_plane,
        role: h.role,
        software: h.software.clone(),
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn hello_with_an_invalid_node_id_is_refused(h in hello(), bad in invalid_node_id()) {
        prop_assert!(NodeId::new(bad.clone()).is_err(), "{:?} should be invalid", bad);
        // The mirror really is the wire shape...
        let good = raw_hello(&h, h.node_id.to_string());
        prop_assert_eq!(&good, &postcard::to_stdvec(&ProbeMessage::Hello(h.clone())).unwrap());
        // ...so with a bad id it is refused, yet its version can still be read.
        let payload = raw_hello(&h, bad);
        let err = decode_payload::<ProbeMessage>(&payload).unwrap_err();
        prop_assert!(matches!(err, DecodeError::Malformed { .. }), "{:?}", err);
        prop_assert_eq!(peek_hello_version(&payload), Some(h.protocol_version));
    }
}

// ---------------------------------------------------------------------------------------------
// Plain tests
// ---------------------------------------------------------------------------------------------

/// Exhaustive over the variants, so that a new variant breaks the build until a strategy makes it.
fn probe_variant(m: &ProbeMessage) -> usize {
    match m {
        ProbeMessage::Hello(_) => 0,
        ProbeMessage::ClockPong(_) => 1,
        ProbeMessage::PhaseStarted { .. } => 2,
        ProbeMessage::Telemetry(_) => 3,
        ProbeMessage::PhaseReport(_) => 4,
        ProbeMessage::Error(_) => 5,
        ProbeMessage::FabricPrepared { .. } => 6,
        ProbeMessage::Facility(_) => 7,
    }
}

fn coordinator_variant(m: &CoordinatorMessage) -> usize {
    match m {
        CoordinatorMessage::Welcome(_) => 0,
        CoordinatorMessage::Refused(r) => {
            10 + match r.reason {
                RefusalReason::ProtocolVersion { .. } => 0,
                RefusalReason::NodeIdMismatch { .. } => 1,
                RefusalReason::DuplicateNode { .. } => 2,
                RefusalReason::ExpectedHello => 3,
                RefusalReason::NotExpected { .. } => 4,
                RefusalReason::DataPlaneAddress { .. } => 5,
            }
        }
        CoordinatorMessage::ClockPing(_) => 1,
        CoordinatorMessage::ClockEstimate(_) => 2,
        CoordinatorMessage::PhaseStart(p) => {
            20 + match p.pattern {
                Pattern::Steady { .. } => 0,
                Pattern::Ramp { .. } => 1,
                Pattern::Steps { .. } => 2,
                Pattern::Square { .. } => 3,
                Pattern::Sweep { .. } => 4,
            }
        }
        CoordinatorMessage::PhaseStop { .. } => 3,
        CoordinatorMessage::Abort { .. } => 4,
        CoordinatorMessage::Ack { .. } => 5,
        CoordinatorMessage::Heartbeat { .. } => 6,
        CoordinatorMessage::Error(_) => 7,
        CoordinatorMessage::FabricPrepare { .. } => 8,
    }
}

#[test]
fn strategies_generate_every_variant() {
    let mut runner = TestRunner::deterministic();
    let probe = probe_message();
    let coordinator = coordinator_message();
    let mut seen_probe = std::collections::BTreeSet::new();
    let mut seen_coordinator = std::collections::BTreeSet::new();
    for _ in 0..3000 {
        seen_probe.insert(probe_variant(
            &probe.new_tree(&mut runner).unwrap().current(),
        ));
        seen_coordinator.insert(coordinator_variant(
            &coordinator.new_tree(&mut runner).unwrap().current(),
        ));
    }
    assert_eq!(seen_probe, (0..8).collect());
    let want: std::collections::BTreeSet<usize> = (0..9).chain(10..16).chain(20..25).collect();
    assert_eq!(seen_coordinator, want);
}

/// A long stream, so that the decoder compacts its buffer (past 64 KiB consumed) while frames are
/// split across pushes.
#[test]
fn long_streams_decode_across_buffer_compaction() {
    let msgs: Vec<CoordinatorMessage> = (0..3000u64)
        .map(|i| match i % 3 {
            0 => CoordinatorMessage::Abort {
                reason: "x".repeat((i * 7 % 300) as usize),
            },
            1 => CoordinatorMessage::Ack { seq: i * 1_000_003 },
            _ => CoordinatorMessage::Heartbeat {
                now_ns: -(i as i64),
            },
        })
        .collect();
    let mut wire = Vec::new();
    for m in &msgs {
        encode_frame_into(m, MAX_FRAME_LEN, &mut wire).unwrap();
    }
    assert!(wire.len() > 128 * 1024, "{}", wire.len());
    for chunk in [1, 3, 7, 100, 4093, 65_537, 70_000, wire.len()] {
        let mut d = FrameDecoder::new(SMALL_MAX);
        let mut got = Vec::new();
        for part in wire.chunks(chunk) {
            d.push(part).unwrap();
            while let Some(m) = d.next_message::<CoordinatorMessage>().unwrap() {
                got.push(m);
            }
        }
        d.finish().unwrap();
        assert_eq!(got, msgs, "chunk size {chunk}");
    }
    // Without taking messages between pushes: everything is buffered, then drained.
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    for part in wire.chunks(9_999) {
        d.push(part).unwrap();
    }
    assert_eq!(d.buffered(), wire.len());
    let mut got = Vec::new();
    while let Some(m) = d.next_message::<CoordinatorMessage>().unwrap() {
        got.push(m);
    }
    assert_eq!(got, msgs);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn empty_frames_are_refused_and_skipped() {
    let mut wire = 0u32.to_be_bytes().to_vec();
    wire.extend(encode_frame(&CoordinatorMessage::Ack { seq: 1 }).unwrap());
    assert_eq!(
        decode_frame::<CoordinatorMessage>(&wire[..HEADER_LEN]),
        Err(DecodeError::EmptyFrame)
    );
    let mut d = FrameDecoder::new(SMALL_MAX);
    d.push(&wire).unwrap();
    assert_eq!(
        d.next_message::<CoordinatorMessage>(),
        Err(DecodeError::EmptyFrame)
    );
    assert_eq!(
        d.next_message::<CoordinatorMessage>(),
        Ok(Some(CoordinatorMessage::Ack { seq: 1 }))
    );
    assert_eq!(d.finish(), Ok(()));
}

/// Writes a seed corpus for the fuzz targets (`fuzz/`) when `HALLMARK_FUZZ_SEEDS` names a directory:
/// `$HALLMARK_FUZZ_SEEDS/decode_probe/` and `.../decode_coordinator/`. A fuzz input is one byte that
/// picks where the rest is split, then a stream of frames; some seeds are bare payloads. Without the
/// variable this test does nothing. `.ci/fuzz` runs it.
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("HALLMARK_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut runner = TestRunner::deterministic();
    let write = |target: &str, frames: Vec<Vec<u8>>| {
        let out = dir.join(target);
        std::fs::create_dir_all(&out).unwrap();
        let mut n = 0;
        let mut put = |bytes: Vec<u8>| {
            std::fs::write(out.join(format!("seed-{n:03}")), bytes).unwrap();
            n += 1;
        };
        for (i, f) in frames.iter().enumerate() {
            let split = (i * 37 % 256) as u8;
            put([&[split][..], f].concat());
            if i % 4 == 0 {
                put(f[HEADER_LEN..].to_vec());
            }
        }
        for (i, group) in frames.chunks(3).enumerate() {
            put([&[(i * 91 % 256) as u8][..], &group.concat()].concat());
        }
    };
    let probe = probe_message();
    let frames = (0..60)
        .map(|_| encode_frame(&probe.new_tree(&mut runner).unwrap().current()).unwrap())
        .collect();
    write("decode_probe", frames);
    let coordinator = coordinator_message();
    let frames = (0..60)
        .map(|_| encode_frame(&coordinator.new_tree(&mut runner).unwrap().current()).unwrap())
        .collect();
    write("decode_coordinator", frames);
}
