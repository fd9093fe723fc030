//! Known-answer and validation tests for the IKEv2 Diffie-Hellman groups.

use bh_crypto::dh::{DhError, DhGroup};
use bh_crypto::random::DeterministicRandom;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

/// Checks one published two-party exchange: both public values derive from the private
/// values and both sides reach the published shared secret.
fn check_exchange(group: DhGroup, i: (&str, &str), r: (&str, &str), shared: &str) {
    let a = group.private_from_bytes(&h(i.0)).unwrap();
    let b = group.private_from_bytes(&h(r.0)).unwrap();
    assert_eq!(
        hex::encode(a.public()),
        i.1.to_lowercase(),
        "{group:?} initiator public"
    );
    assert_eq!(
        hex::encode(b.public()),
        r.1.to_lowercase(),
        "{group:?} responder public"
    );
    let za = a.shared_secret(b.public()).unwrap();
    let zb = b.shared_secret(a.public()).unwrap();
    assert_eq!(
        hex::encode(&za[..]),
        shared.to_lowercase(),
        "{group:?} shared"
    );
    assert_eq!(za, zb);
    assert_eq!(za.len(), group.shared_secret_len());
}

// RFC 5903 §8.1: 256-bit Random ECP Group. Public values are gix || giy (RFC 5903 §7), and
// the shared secret is girx only.
#[test]
fn ecp256_rfc5903_section_8_1() {
    check_exchange(
        DhGroup::Ecp256,
        (
            "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
            concat!(
                "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
                "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
            ),
        ),
        (
            "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
            concat!(
                "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
                "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
            ),
        ),
        "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
    );
}

// RFC 5903 §8.2: 384-bit Random ECP Group.
#[test]
fn ecp384_rfc5903_section_8_2() {
    check_exchange(
        DhGroup::Ecp384,
        (
            concat!(
                "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655",
                "E35B538041E649EE3FAEF896783AB194"
            ),
            concat!(
                "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6",
                "DE3AC808ACB4BDB4C88732AEE95F41AA",
                "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38E",
                "EB9FCFF3C2C947DAE69B4C634573A81C"
            ),
        ),
        (
            concat!(
                "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942",
                "E0308312916B8ED2960E4BD55A7448FC"
            ),
            concat!(
                "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D",
                "0D1AC43A0336DEF96FDA41D0774A3571",
                "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FF",
                "F83FA40142209DFF5EAAD96DB9E6386C"
            ),
        ),
        concat!(
            "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4",
            "D603135569B9E9D09CF5D4A270F59746"
        ),
    );
}

// RFC 5903 §8.3: 521-bit Random ECP Group (coordinates and scalars are 66 octets).
#[test]
fn ecp521_rfc5903_section_8_3() {
    check_exchange(
        DhGroup::Ecp521,
        (
            concat!(
                "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A0",
                "95AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D",
                "4A52"
            ),
            concat!(
                "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBE",
                "E1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176C",
                "ED3E",
                "017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10A",
                "D8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F",
                "9582"
            ),
        ),
        (
            concat!(
                "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E",
                "9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB15168",
                "5EB9"
            ),
            concat!(
                "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A21",
                "9B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9",
                "460F",
                "015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87",
                "220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0F",
                "C56A"
            ),
        ),
        concat!(
            "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04",
            "D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3",
            "DDEA"
        ),
    );
}

const G24_XA: &str = "0881382cdb87660c6dc13e614938d5b9c8b2f248581cc5e31b35454397fce50e";
const G24_XB: &str = "7d62a7e3ef36de617b13d1afb82c780d83a23bd4ee6705645121f371f546a53d";
const G24_YA: &str = concat!(
    "2e9380c8323af97545bc4941deb0ec3742c62fe0ece824a6abdbe66c59bee024",
    "2911bfb967235ceba35ae13e4ec752be630b92dc4bde2847a9c62cb815274542",
    "1fb7eb60a63c0fe9159fcce726ce7cd8523d7450667ef840e4919121eb5f01c8",
    "c9b0d3d648a93bfb75689e8244ac134af544711ce79a02dcc34226684780dddc",
    "b498594106c37f5bc79856487af5ab022a2e5e42f09897c1a85a11ea0212af04",
    "d9b4cebc937c3c1a3e15a8a0342e337615c84e7fe3b8b9b87fb1e73a15af12a3",
    "0d746e06dfc34f290d797ce51aa13aa785bf6658aff5e4b093003cbeaf665b3c",
    "2e113a3a4e905269341dc0711426685f4ef37e868a8126ff3f2279b57ca67e29",
);
const G24_YB: &str = concat!(
    "575f0351bd2b1b817448bdf87a6c362c1e289d3903a30b9832c5741fa250363e",
    "7acbc7f77f3dacbc1f131add8e03367eff8fbbb3e1c5784424809b25afe4d226",
    "2a1a6fd2fab64105ca30a674e07f7809852088632fc049233791ad4edd083a97",
    "8b883ee618bc5e0dd047415f2d95e683cf14826b5fbe10d3ce41c6c120c78ab2",
    "0008c698bf7f0bcab9d7f407bed0f43afb2970f57f8d12043963e66ddd320d59",
    "9ad9936c8f44137c08b180ec5e985cebe186f3d549677e80607331ee17af3380",
    "a725b0782317d7dd43f59d7af9568a9bb63a84d365f92244ed120988219302f4",
    "2924c7ca90b89d24f71b0ab697823d7deb1aff5b0e8e4a45d49f7f53757e1913",
);
const G24_Z: &str = concat!(
    "86c70bf8d0bb81bb01078a17219cb7d27203db2a19c877f1d1f19fd7d77ef225",
    "46a68f005ad52dc84553b78fc60330be51ea7c0672cac1515e4b35c047b9a551",
    "b88f39dc26da14a09ef74774d47c762dd177f9ed5bc2f11e52c879bd95098504",
    "cd9eecd8a8f9b3efbd1f008ac5853097d9d1837f2b18f77cd7be01af80a7c7b5",
    "ea3ca54cc02d0c116fee3f95bb87399385875d7e86747e676e728938acbff709",
    "8e05be4dcfb24052b83aeffb14783f029adbde7f53fae92084224090e007cee9",
    "4d4bf2bace9ffd4b57d2af7c724d0caa19bf0501f6f17b4aa10f425e3ea76080",
    "b4b9d6b3cefea115b2ceb8789bb8a3b0ea87febe63b6c8f846ec6db0c26c5d7c",
);
// RFC 7748 §6.1
const X25519_A: [&str; 2] = [
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
];
const X25519_B: [&str; 2] = [
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
];
const X25519_K: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
// RFC 8031 Appendix A
const RFC8031_I: [&str; 2] = [
    "751fb4308655b476b6789b7325f9ea8cddd16a58533ff6d9e60009464a5f9d94",
    "48d5ddd4061257ba166fa3f9bbdb74f1a4e81c089384fa77f790709f0dfbc766",
];
const RFC8031_R: [&str; 2] = [
    "0a54645253290d60ddadd0e030bacd9e5501efdc220755a1e978f1b839a05688",
    "0be7c1f5aad87d7e448662673298a443478b859745179eaf564c79c0ef6eee25",
];
const RFC8031_K: &str = "c74950607a12327f3204d94b6825bfb068b7f8319a9e3708ed3d43ce8130c950";

#[test]
fn x25519_rfc7748_section_6_1() {
    check_exchange(
        DhGroup::Curve25519,
        (X25519_A[0], X25519_A[1]),
        (X25519_B[0], X25519_B[1]),
        X25519_K,
    );
}

#[test]
fn x25519_rfc8031_appendix_a() {
    check_exchange(
        DhGroup::Curve25519,
        (RFC8031_I[0], RFC8031_I[1]),
        (RFC8031_R[0], RFC8031_R[1]),
        RFC8031_K,
    );
}

// RFC 5114 Appendix A.3, test data for the 2048-bit MODP group with 256-bit prime order
// subgroup: xA/yA, xB/yB and the shared secret Z. The peer values also pass the RFC 6989 §2.2
// subgroup check.
#[test]
fn modp2048s256_rfc5114_appendix_a_3() {
    check_exchange(
        DhGroup::Modp2048s256,
        (G24_XA, G24_YA),
        (G24_XB, G24_YB),
        G24_Z,
    );
}

// MODP group 14 with python3's built-in pow() as the reference:
//
//   p  = the RFC 3526 §3 prime;  x = int("0123456789abcdef" * 5, 16)   (40 octets)
//   ya = pow(2, x, p);  yb = pow(2, 0x5f000124, p);  z = pow(yb, x, p)
//
// 0x5f000124 was chosen so that z has a leading zero octet: the shared secret must still be
// 256 octets, left-padded (RFC 7296 §2.14).
#[test]
fn modp2048_known_answer_from_python_pow() {
    let x = h(&"0123456789abcdef".repeat(5));
    let a = DhGroup::Modp2048.private_from_bytes(&x).unwrap();
    assert_eq!(
        hex::encode(a.public()),
        concat!(
            "0478d39048c2ecd0e74b228b4eb6323d90675d9f73a47894048e7a6e851dca84",
            "16d1f5a41306c71614165cebe53d192f4cff5364cb151cde9326777ae366197e",
            "3549cd4b0fb2b54a116b3d15b7da7640dc3673b764b2ebfc53d7fa44c0eaa3b6",
            "9eebd8b70e551a4d7c079c1fce6c0bc2ff03fe937c136eb8ade35221dfa1e71b",
            "d97b7bd871380b267b282fd507de703d01cdfb0880a4de9f449ff4ee9c7292a6",
            "e13fb7b64d1c6ab67d0028aed9057661e13e37c1b179ef777f62a0bcb911a851",
            "cb3838d22f7d78f37f741a0ea38b14e9f9713cff26de3beb12a2e49c752732f0",
            "bd37f2a08b03e2cd124b4f6ba9797e4ac46054d6b343c251e46ff30d5a38e658"
        )
    );
    let b = DhGroup::Modp2048
        .private_from_bytes(&0x5f00_0124u32.to_be_bytes())
        .unwrap();
    let yb = concat!(
        "ca0aaa40717fbfb6c944c05564d98ba063ceb61c5267757364ed80e624670dff",
        "7aa99c232906ca9bf4cefa49bf49ed516d4b33cf741148ede12fab73d4b32008",
        "8252cf18d5851c22dd118fbaa931fb77972cff2e49f7bce68ce8258206e0c666",
        "3747892caf2fdb479c877f83d0761c60db630eec01bc6c3e8731f7f01eb0cc11",
        "edbe7310cc857c03c6ea63c23c22b6992928d25c67820c15b58d8d3eadff8101",
        "6aa4178115531541b1af08237b9afd212a5a801e640b35bc553b012651d218a7",
        "1f998faef4e8eb15a7178e836f63ee9c975517e2e34a32b2fae53ca2758f42de",
        "88a5d960b7f51a558da632421b1cb3908c0d59025d6eeb238ecf8e0d1d88ed2a"
    );
    assert_eq!(hex::encode(b.public()), yb);
    let z = a.shared_secret(&h(yb)).unwrap();
    assert_eq!(z.len(), 256);
    assert_eq!(z[0], 0, "left-padded to the prime length");
    assert_eq!(
        hex::encode(&z[..]),
        concat!(
            "004171ea367d039103ab63c5bc4b14a33cdca8d4934e62a7c4cd0bc7d8e3218c",
            "63909913eaea21c2c6dd0120d913ec7b770f4ed4b3f22cbcebffa53304e72de9",
            "52efe69661a1119f5ca58c9dc4f61c72033c413fd78131d9fa62d18b0b7b73f4",
            "98e8faa0315857a053d31c1e528d8bab84d70bd7ddf163fb35569d87db1c38c6",
            "2a37c9037da74e8d302720f3043ee87ba391ec34e4da38c215143a87dd04e75a",
            "8c0626dd268560f16a6ea21e4d837c166263ad8bdf3d33c4920ce5feb6918e2b",
            "eacdbdc2650f38fd2e96a914c98425926cfe8fb8be3f4d83a415d3545fd3c35a",
            "2e5512ef288d1769ad4a870f389e99ecc19f67b7c882a61d73a877fdfeb79378"
        )
    );
    assert_eq!(b.shared_secret(a.public()).unwrap(), z);
}

#[test]
fn every_group_generates_and_two_parties_agree() {
    let mut rng = DeterministicRandom::from_seed([42; 32]);
    for group in DhGroup::ALL {
        let a = group.generate(&mut rng).unwrap();
        let b = group.generate(&mut rng).unwrap();
        assert_eq!(a.group(), group);
        assert_eq!(a.public().len(), group.public_len(), "{group:?}");
        assert_ne!(a.public(), b.public(), "{group:?}");
        let za = a.shared_secret(b.public()).unwrap();
        let zb = b.shared_secret(a.public()).unwrap();
        assert_eq!(za, zb, "{group:?}");
        assert_eq!(za.len(), group.shared_secret_len(), "{group:?}");
        // A third party gets something else.
        let c = group.generate(&mut rng).unwrap();
        assert_ne!(c.shared_secret(b.public()).unwrap(), za, "{group:?}");
        // Debug output never shows the private value.
        assert!(!format!("{a:?}").contains(&hex::encode(&za[..4])));
    }
}

#[test]
fn generation_is_reproducible_from_the_seed() {
    for group in [DhGroup::Modp2048s256, DhGroup::Ecp256, DhGroup::Curve25519] {
        let a = group
            .generate(&mut DeterministicRandom::from_seed([1; 32]))
            .unwrap();
        let b = group
            .generate(&mut DeterministicRandom::from_seed([1; 32]))
            .unwrap();
        assert_eq!(a.public(), b.public());
    }
}

#[test]
fn transform_ids_and_lengths() {
    let table = [
        (2, 128, 128),
        (14, 256, 256),
        (15, 384, 384),
        (16, 512, 512),
        (24, 256, 256),
        (19, 64, 32),
        (20, 96, 48),
        (21, 132, 66),
        (31, 32, 32),
    ];
    for (id, public_len, shared_len) in table {
        let g = DhGroup::from_id(id).unwrap();
        assert_eq!(g.id(), id);
        assert_eq!(g.public_len(), public_len);
        assert_eq!(g.shared_secret_len(), shared_len);
    }
    // Groups 1, 5, 22, 23 and unknown numbers are not offered.
    for id in [0, 1, 5, 22, 23, 25, 32, u16::MAX] {
        assert_eq!(DhGroup::from_id(id), None);
    }
}

#[test]
fn peer_public_values_of_the_wrong_length_are_errors() {
    let mut rng = DeterministicRandom::from_seed([3; 32]);
    for group in DhGroup::ALL {
        let a = group.generate(&mut rng).unwrap();
        let want = group.public_len();
        for got in [0, 1, want - 1, want + 1, 2 * want] {
            assert_eq!(
                a.shared_secret(&vec![0x42; got]).err(),
                Some(DhError::PublicLength { got, want }),
                "{group:?} with {got} octets"
            );
        }
    }
}

/// The RFC 3526 §3 prime (group 14), for building edge-case peer values.
const MODP2048_PRIME: &str = concat!(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
);

#[test]
fn modp_peer_values_outside_1_to_p_minus_1_are_refused() {
    let mut rng = DeterministicRandom::from_seed([4; 32]);
    for group in [
        DhGroup::Modp1024,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Modp2048s256,
    ] {
        let a = group.generate(&mut rng).unwrap();
        let n = group.public_len();
        let mut one = vec![0u8; n];
        one[n - 1] = 1;
        // 0, 1, and 2^bits - 1 (> p) are refused in every group (RFC 6989 §2.1).
        for bad in [vec![0u8; n], one, vec![0xff; n]] {
            assert_eq!(
                a.shared_secret(&bad).err(),
                Some(DhError::InvalidPublic),
                "{group:?}"
            );
        }
    }
    // Group 14: p - 1 and p are refused, p - 2 and 2 are accepted.
    let a = DhGroup::Modp2048.generate(&mut rng).unwrap();
    let p = h(MODP2048_PRIME);
    assert_eq!(p[255], 0xff);
    let with_last = |b: u8| {
        let mut v = p.clone();
        v[255] = b;
        v
    };
    for bad in [with_last(0xfe), p.clone()] {
        assert_eq!(a.shared_secret(&bad).err(), Some(DhError::InvalidPublic));
    }
    let mut two = vec![0u8; 256];
    two[255] = 2;
    for good in [with_last(0xfd), two.clone()] {
        assert_eq!(a.shared_secret(&good).unwrap().len(), 256);
    }
    // g^1 = 2: the public value is big-endian and left-padded to the prime length.
    let g1 = DhGroup::Modp2048.private_from_bytes(&[1]).unwrap();
    assert_eq!(g1.public(), &two[..]);
}

#[test]
fn group24_peer_values_outside_the_subgroup_are_refused() {
    // RFC 6989 §2.2: 2 is in range but 2^q mod p != 1 for the RFC 5114 §2.3 group (checked
    // with python3: pow(2, q, p) != 1).
    let a = DhGroup::Modp2048s256
        .private_from_bytes(&h(G24_XA))
        .unwrap();
    let mut two = vec![0u8; 256];
    two[255] = 2;
    assert_eq!(a.shared_secret(&two).err(), Some(DhError::InvalidPublic));
    // The published peer value passes.
    assert!(a.shared_secret(&h(G24_YB)).is_ok());
}

#[test]
fn ecp_points_off_the_curve_are_refused() {
    let mut rng = DeterministicRandom::from_seed([5; 32]);
    for group in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let a = group.generate(&mut rng).unwrap();
        let b = group.generate(&mut rng).unwrap();
        let mut bad = b.public().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1; // y no longer matches x
        assert_eq!(
            a.shared_secret(&bad).err(),
            Some(DhError::InvalidPublic),
            "{group:?}"
        );
        // All zero is not a point (the identity has no x || y encoding).
        assert_eq!(
            a.shared_secret(&vec![0; group.public_len()]).err(),
            Some(DhError::InvalidPublic),
            "{group:?}"
        );
        // Coordinates >= p are refused, too.
        assert_eq!(
            a.shared_secret(&vec![0xff; group.public_len()]).err(),
            Some(DhError::InvalidPublic),
            "{group:?}"
        );
    }
}

#[test]
fn x25519_low_order_points_give_an_error_not_a_zero_secret() {
    let a = DhGroup::Curve25519
        .private_from_bytes(&h(X25519_A[0]))
        .unwrap();
    // u = 0 and u = 1 are low-order points: X25519 yields all zero (RFC 7748 §6.1,
    // RFC 8031 §2 requires the check).
    let mut u1 = [0u8; 32];
    u1[0] = 1;
    for peer in [[0u8; 32], u1] {
        assert_eq!(
            a.shared_secret(&peer).err(),
            Some(DhError::ZeroSharedSecret)
        );
    }
}

#[test]
fn bad_private_values_are_refused() {
    use DhGroup::*;
    assert_eq!(
        Modp2048.private_from_bytes(&[]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Modp2048.private_from_bytes(&[0; 40]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Modp2048.private_from_bytes(&[1; 257]).err(),
        Some(DhError::InvalidPrivate)
    );
    // Group 24 exponents must be < q (q starts 8CF8...).
    assert_eq!(
        Modp2048s256.private_from_bytes(&[0xff; 32]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Modp2048s256.private_from_bytes(&[1; 33]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Ecp256.private_from_bytes(&[1; 31]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Ecp256.private_from_bytes(&[0; 32]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Ecp384.private_from_bytes(&[0xff; 48]).err(),
        Some(DhError::InvalidPrivate)
    );
    assert_eq!(
        Curve25519.private_from_bytes(&[1; 31]).err(),
        Some(DhError::InvalidPrivate)
    );
}

/// A random source that only ever returns zeros.
struct Zeros;

impl bh_crypto::random::SecureRandom for Zeros {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

#[test]
fn a_broken_random_source_is_reported() {
    assert_eq!(
        DhGroup::Modp2048.generate(&mut Zeros).err(),
        Some(DhError::RandomFailure)
    );
    assert_eq!(
        DhGroup::Modp2048s256.generate(&mut Zeros).err(),
        Some(DhError::RandomFailure)
    );
}
