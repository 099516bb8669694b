//! The built-in spec of `hallmark demo`: the simulated demo hall (`examples/hall-demo.toml`) of
//! 100 kW racks with 1000 W GPUs (max operating 85 °C), judged on the demo plan. Equal to
//! `examples/spec-demo-100kw.toml`; a test keeps the two equal.

use super::{parse_spec, Spec};

/// The built-in demo spec, as text (stored with each certification it makes).
pub const DEMO_SPEC: &str = r#"# The built-in certification spec of `hallmark demo` (equal to `demo_spec()`; a test keeps them
# equal). Format: docs/SPEC.md.
#
# The simulated demo hall: 2 rows × 4 racks × 10 nodes × 8 GPUs of 1000 W, ≈ 100 kW per rack at full
# load, GPUs with a max-operating temperature of 85 °C. Rack row2-rack03's coolant loop is
# undersized (75 kW): under full load its GPUs overheat and throttle, and this spec fails them.
# The facility criteria at the end judge the hall's own meters: a PDU that reads low fails the
# energy balance, a CDU with too little flow the coolant ΔT.

name = "demo-100kw"
description = "Simulated 100 kW liquid-cooled racks under the demo plan (ramp, steady, square)"

# Each rack holds near its design power through the steady phase.
[[criterion]]
id = "rack-sustained-power"
title = "Sustained rack power over 20 s in phase steady"
kind = "sustained_power"
scope = "rack"
phase = "steady"
min = "95 kW"
window = "20 s"

# No rack ever exceeds its breaker rating (the plan's max_rack_kw).
[[criterion]]
id = "rack-peak-power"
title = "Peak rack power within the breaker rating"
kind = "peak_power"
scope = "rack"
max = "130 kW"

# Every GPU stays at or below its own max-operating temperature; within 3 °C of it is a warning.
[[criterion]]
id = "gpu-temperature"
title = "GPU temperature at or below max-operating"
kind = "gpu_temperature"
margin = "0 °C"
warn_margin = "3 °C"

# Throttling budgets per GPU, by duration (samples with the bit × the sample interval).
[[criterion]]
id = "throttle-hw-thermal"
title = "No hardware thermal slowdown"
kind = "throttle"
reason = "hw_thermal"
max = "0 s"

[[criterion]]
id = "throttle-hw-power-brake"
title = "No hardware power brake"
kind = "throttle"
reason = "hw_power_brake"
max = "0 s"

[[criterion]]
id = "throttle-sw-thermal"
title = "Software thermal slowdown at most 2 s per GPU"
kind = "throttle"
reason = "sw_thermal"
max = "2 s"

# Every GPU achieves at least 90 % of the fleet median in every phase with load. (No MAD outlier
# warning here: the simulated GPUs' spread is uniform, not normal, so a few healthy ones would stand
# out; see examples/spec-h200-100kw.toml for it.)
[[criterion]]
id = "tflops"
title = "Achieved TFLOP/s at least 90 % of the fleet median"
kind = "tflops"
min_fraction_of_median = 0.9

[[criterion]]
id = "wrong-elements"
title = "No silent data corruption"
kind = "wrong_elements"
max = 0

# Every phase starts on every node within 50 ms.
[[criterion]]
id = "start-skew"
title = "Phase start skew"
kind = "start_skew"
max = "50 ms"

# The plan's expected inventory (80 nodes of 8 GPUs) registered.
[[criterion]]
id = "inventory"
title = "Expected inventory present"
kind = "inventory"

[[criterion]]
id = "coverage"
title = "Telemetry coverage"
kind = "coverage"
min = "99.9 %"

# --- The facility's own meters (docs/FACILITY.md) ---------------------------------------------------
# Judged from the readings of the simulated hall's Redfish rack PDUs and CDUs stored with the run.
# A run without facility readings has these criteria INCOMPLETE: no PDU or CDU, no verdict.

# The PDU's peak and sustained rack power, on the same bins and windows as the GPU-side ones.
[[criterion]]
id = "pdu-peak-power"
title = "Peak rack power by PDU within the breaker rating"
kind = "pdu_peak_power"
max = "130 kW"

[[criterion]]
id = "pdu-sustained-power"
title = "Sustained rack power by PDU over 20 s in phase steady"
kind = "pdu_sustained_power"
phase = "steady"
min = "95 kW"
window = "20 s"

# Warm-water loops at a 30 °C setpoint: the supply stays at or below 35 °C under load.
[[criterion]]
id = "coolant-supply"
title = "Coolant supply temperature under load"
kind = "coolant_supply_temperature"
max = "35 °C"

# The rack loop's ΔT under load (≈ 8 K at the simulated design flow for a 100 kW rack); a CDU with
# too little flow for its heat exceeds 15 K.
[[criterion]]
id = "coolant-delta-t"
title = "Coolant ΔT under load"
kind = "coolant_delta_t"
max = "15 K"

[[criterion]]
id = "heat-removed"
title = "Heat removed per rack over 20 s in phase steady"
kind = "heat_removed"
phase = "steady"
min = "80 kW"
window = "20 s"

# GPU-side (the probes' node power) ≤ PDU per rack within 5 %: a PDU reading low fails here.
[[criterion]]
id = "energy-balance"
title = "Energy balance: GPU-side ≤ chassis ≤ PDU"
kind = "energy_balance"
phase = "steady"
tolerance = "5 %"

# ρ·c_p·flow·ΔT (water, as the simulated loops) within 10 % of the CDU's heat removed; the simulated
# liquid captures 90 % of a rack's heat (docs/HALL.md); its CDU and PDU meters read once a second
# each, and the capture measured in steady lies within 70–105 %.
[[criterion]]
id = "heat-balance"
title = "Heat balance and liquid capture"
kind = "heat_balance"
phase = "steady"
tolerance = "10 %"
capture_min = "70 %"
capture_max = "105 %"
coolant = "water"
"#;

/// The built-in demo spec ([`DEMO_SPEC`]), parsed.
pub fn demo_spec() -> Spec {
    match parse_spec(DEMO_SPEC, "spec-demo-100kw.toml") {
        Ok(spec) => spec,
        // Unreachable: the unit tests parse the constant.
        Err(e) => panic!("built-in spec does not parse: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_spec_parses_and_equals_the_example_file() {
        let spec = demo_spec();
        assert_eq!(spec.name, "demo-100kw");
        assert_eq!(spec.criteria.len(), 18);
        let file = include_str!("../../../examples/spec-demo-100kw.toml");
        assert_eq!(
            file, DEMO_SPEC,
            "examples/spec-demo-100kw.toml differs from DEMO_SPEC"
        );
    }
}
