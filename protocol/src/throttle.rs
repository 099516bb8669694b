//! NVML's clock-event ("throttle") reason bits, as `nvmlDeviceGetCurrentClocksEventReasons` reports them.
//!
//! A backend reports the reasons why a device's clocks are below their maximum as a bit mask of these
//! constants; [`names`] spells a mask out for logs and reports. [`THERMAL`] masks the bits that mean the
//! device is too hot; [`GPU_IDLE`] and [`SW_POWER_CAP`] are normal (an idle device, a device held at its
//! power limit by full load) and are not a thermal event.

/// Nothing runs on the device; clocks are idle.
pub const GPU_IDLE: u64 = 0x1;
/// Clocks are limited by the application clock setting.
pub const APPLICATIONS_CLOCKS: u64 = 0x2;
/// The software power cap holds the device at its power limit.
pub const SW_POWER_CAP: u64 = 0x4;
/// Hardware slowdown (temperature, power brake or a power-supply signal).
pub const HW_SLOWDOWN: u64 = 0x8;
/// Clocks follow the other GPUs of a sync-boost group.
pub const SYNC_BOOST: u64 = 0x10;
/// The software thermal controller lowers clocks: the device is above its slowdown temperature.
pub const SW_THERMAL: u64 = 0x20;
/// Hardware thermal slowdown: the device is too hot for the software controller to hold.
pub const HW_THERMAL: u64 = 0x40;
/// The external power-brake signal is asserted.
pub const HW_POWER_BRAKE: u64 = 0x80;
/// Clocks are limited by the display clock setting.
pub const DISPLAY_CLOCK: u64 = 0x100;

/// Bits that mean the device is too hot.
pub const THERMAL: u64 = SW_THERMAL | HW_THERMAL;

/// Every known bit with its name, lowest first.
pub const ALL: [(u64, &str); 9] = [
    (GPU_IDLE, "GPU_IDLE"),
    (APPLICATIONS_CLOCKS, "APPLICATIONS_CLOCKS"),
    (SW_POWER_CAP, "SW_POWER_CAP"),
    (HW_SLOWDOWN, "HW_SLOWDOWN"),
    (SYNC_BOOST, "SYNC_BOOST"),
    (SW_THERMAL, "SW_THERMAL"),
    (HW_THERMAL, "HW_THERMAL"),
    (HW_POWER_BRAKE, "HW_POWER_BRAKE"),
    (DISPLAY_CLOCK, "DISPLAY_CLOCK"),
];

/// The names of the bits set in `mask`, lowest first; unknown bits are named by their hex value
/// (`0x200`). An empty mask gives an empty list.
pub fn names(mask: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut known = 0u64;
    for (bit, name) in ALL {
        known |= bit;
        if mask & bit != 0 {
            out.push(name.to_string());
        }
    }
    let mut rest = mask & !known;
    while rest != 0 {
        let bit = rest & rest.wrapping_neg();
        out.push(format!("{bit:#x}"));
        rest &= !bit;
    }
    out
}

/// `mask` as `NAME|NAME`, or `none`.
pub fn describe(mask: u64) -> String {
    let names = names(mask);
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spell_out_known_and_unknown_bits() {
        assert!(names(0).is_empty());
        assert_eq!(describe(0), "none");
        assert_eq!(names(SW_THERMAL | GPU_IDLE), vec!["GPU_IDLE", "SW_THERMAL"]);
        assert_eq!(describe(HW_THERMAL | 0x400), "HW_THERMAL|0x400");
        let all = ALL.iter().fold(0, |m, (b, _)| m | b);
        assert_eq!(all, 0x1ff);
        assert_eq!(names(all).len(), 9);
    }
}
