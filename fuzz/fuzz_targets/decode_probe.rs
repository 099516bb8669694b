//! Probe → coordinator messages, as the coordinator decodes them from an untrusted peer.
#![no_main]

use hallmark_protocol::ProbeMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallmark_fuzz::check_decoding::<ProbeMessage>(data);
    hallmark_fuzz::check_hello_version(data);
});
