//! Any bytes through the IKEv2 message and payload decoders.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bh_ike::fuzzing::decode_target(data);
});
