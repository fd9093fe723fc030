//! Any bytes into an IKEv2 responder that has an established SA with a well-behaved initiator.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut target = bh_ike::fuzzing::ResponderTarget::new(7);
    target.feed(data, true, 500);
});
