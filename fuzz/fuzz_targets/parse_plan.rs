//! Plan files (`hallmark run PLAN`): no panic; every error names file, line and column.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = hallmark_fuzz::text_of(data);
    if let Err(e) = hallmark_protocol::plan::parse_plan(&text, "plan.toml") {
        hallmark_fuzz::check_file_error(&text, "plan.toml", e.line, e.column, &e.to_string());
    }
});
