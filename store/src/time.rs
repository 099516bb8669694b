//! Coordinator-clock instants (ns since the UNIX epoch) as UTC text, and run id generation.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

fn parts(t_ns: i64) -> Parts {
    let secs = t_ns.div_euclid(1_000_000_000);
    let millis = t_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    Parts {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: sod % 3600 / 60,
        second: sod % 60,
        millis,
    }
}

/// `2026-11-29 02:15:00.123Z`.
pub fn format_utc(t_ns: i64) -> String {
    let p = parts(t_ns);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

/// `20261129T021500Z`: the compact, sortable form used in run ids.
pub fn compact_utc(t_ns: i64) -> String {
    let p = parts(t_ns);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

/// Six random hex digits from the standard library's randomly keyed hasher (no extra dependency;
/// uniqueness within a database is enforced by the primary key, with retries).
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// A new run id for a run started at `started_at_ns`.
pub fn new_run_id(started_at_ns: i64) -> String {
    format!("{}-{}", compact_utc(started_at_ns), random_suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00.000Z");
        // 2026-11-29 02:15:00.250 UTC
        let t = 1_795_918_500_250_000_000;
        assert_eq!(format_utc(t), "2026-11-29 02:15:00.250Z");
        assert_eq!(compact_utc(t), "20261129T021500Z");
        // 2000-02-29 (leap day) and before the epoch
        assert_eq!(
            format_utc(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000Z"
        );
        assert_eq!(format_utc(-1_000_000), "1969-12-31 23:59:59.999Z");
    }

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let a = new_run_id(1_795_918_500_000_000_000);
        let b = new_run_id(1_795_918_501_000_000_000);
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20261129T021500Z-ab12cd".len());
        let many: std::collections::HashSet<_> = (0..100).map(|_| new_run_id(0)).collect();
        assert!(many.len() > 95);
    }
}
