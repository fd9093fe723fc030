//! Stable fuzz replay: 20,000 seeded random and mutated messages through the decoder and into an
//! Established session. Nothing may panic; garbage may tear down only the session it arrived on.

use std::time::Duration;

use bh_bgp::fuzzing::{FuzzRng, Lab, corpus, decode_any, mutate};
use bh_bgp::session::State;
use bh_bgp::wire::DecodeCtx;

#[test]
fn twenty_thousand_inputs_no_panic_and_only_the_sender_is_torn_down() {
    let mut seeds = corpus(&DecodeCtx {
        four_octet_as: true,
    });
    seeds.extend(corpus(&DecodeCtx {
        four_octet_as: false,
    }));
    assert!(
        decode_any(&seeds.concat()) >= seeds.len(),
        "the corpus itself decodes"
    );
    let mut rng = FuzzRng::new(0x6267_7020_6675_7a7a);
    let mut lab = Lab::new(1);
    assert!(lab.bystander_intact());
    assert_eq!(lab.target_state(), Some(State::Established));
    let (mut teardowns, mut decoded) = (0usize, 0usize);
    for i in 0..20_000u32 {
        let input = mutate(&mut rng, &seeds);
        decoded += decode_any(&input);
        lab.inject(&input);
        assert!(
            lab.bystander_intact(),
            "input {i} harmed the other session: {}",
            hex(&input)
        );
        if lab.target_state() != Some(State::Established) {
            teardowns += 1;
            // Let the target reconnect (ConnectRetry, jittered) before the next input.
            for _ in 0..40 {
                if lab.target_state() == Some(State::Established) {
                    break;
                }
                lab.advance(Duration::from_secs(5));
            }
            assert_eq!(
                lab.target_state(),
                Some(State::Established),
                "target recovers after input {i}"
            );
        }
    }
    // The mix must exercise both outcomes.
    assert!(teardowns > 1000, "teardowns {teardowns}");
    assert!(decoded > 1000, "decoded {decoded}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
