//! Simulated hall files (`--simulate HALL`): no panic; every error names file, line and column.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = hallmark_fuzz::text_of(data);
    if let Err(e) = hallmark_workloads::sim::parse_hall(&text, "hall.toml") {
        let shown = e.to_string();
        let (Some(line), Some(column)) = (e.line(), e.column()) else {
            panic!("a parse error without line and column: {shown}");
        };
        hallmark_fuzz::check_file_error(&text, "hall.toml", line, column, &shown);
    }
});
