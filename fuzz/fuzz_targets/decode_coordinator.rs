//! Coordinator → probe messages, as a probe decodes them.
#![no_main]

use hallmark_protocol::CoordinatorMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallmark_fuzz::check_decoding::<CoordinatorMessage>(data);
});
