//! Any bytes through the BGP message decoder (2- and 4-octet AS contexts).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bh_bgp::fuzzing::decode_any(data);
});
