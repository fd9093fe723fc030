//! Any datagram received on UDP port 4500: demultiplexed, and ESP opened with a test key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bh_esp::fuzzing::open_datagram(data);
});
