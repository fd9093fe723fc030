use proptest::prelude::*;

use super::*;

fn header(exchange: ExchangeType) -> Header {
    Header {
        spi_i: [1, 2, 3, 4, 5, 6, 7, 8],
        spi_r: [0; 8],
        version: VERSION_2_0,
        exchange,
        flags: FLAG_INITIATOR,
        message_id: 0,
    }
}

/// Hand-assembled from the layouts in RFC 7296 §3.1, §3.3, §3.9, §3.10.
#[test]
fn golden_ike_sa_init_fragment() {
    let msg = Message {
        header: header(ExchangeType::IKE_SA_INIT),
        payloads: vec![
            Payload::Sa(vec![Proposal {
                num: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_length(TransformType::ENCR, encr::AES_CBC, 256),
                    Transform::new(TransformType::DH, 14),
                ],
            }]),
            Payload::Nonce(vec![0xaa; 16]),
            Payload::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                vec![],
            )),
        ],
    };
    let bytes = msg.encode().unwrap();
    let want = hex::decode(
        "01020304050607080000000000000000212022080000000000000058\
         28000020\
         0000001c01010002\
         0300000c0100000c800e0100\
         000000080400000e\
         29000014aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
         000000080000402e",
    )
    .unwrap();
    assert_eq!(hex::encode(&bytes), hex::encode(&want));
    assert_eq!(Message::decode(&want).unwrap(), msg);
}

#[test]
fn unknown_payloads_honour_the_critical_bit() {
    let mut msg = Message {
        header: header(ExchangeType::INFORMATIONAL),
        payloads: vec![Payload::Unknown {
            ty: PayloadType(200),
            critical: false,
            data: vec![1, 2, 3],
        }],
    };
    let bytes = msg.encode().unwrap();
    assert_eq!(Message::decode(&bytes).unwrap(), msg);
    msg.payloads = vec![Payload::Unknown {
        ty: PayloadType(200),
        critical: true,
        data: vec![1, 2, 3],
    }];
    let bytes = msg.encode().unwrap();
    let err = Message::decode(&bytes).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedCritical(PayloadType(200)));
    assert_eq!(
        err.notify(),
        (NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![200])
    );
}

#[test]
fn errors_map_to_rfc_notifies() {
    let msg = Message {
        header: header(ExchangeType::IKE_SA_INIT),
        payloads: vec![Payload::Nonce(vec![0; 16])],
    };
    let mut bytes = msg.encode().unwrap();
    // Version 3.0.
    bytes[17] = 0x30;
    let e = Message::decode(&bytes).unwrap_err();
    assert_eq!(e.notify().0, NotifyType::INVALID_MAJOR_VERSION);
    bytes[17] = 0x20;
    // Nonce shorter than 16 octets: shrink the payload length and the message length.
    let mut short = bytes.clone();
    short.truncate(short.len() - 1);
    short[27] -= 1;
    short[31] -= 1;
    let e = Message::decode(&short).unwrap_err();
    assert_eq!(e, DecodeError::InvalidSyntax(PayloadType::NONCE));
    assert_eq!(e.notify().0, NotifyType::INVALID_SYNTAX);
    // Header length disagreeing with the datagram.
    bytes.push(0);
    assert_eq!(Message::decode(&bytes), Err(DecodeError::BadLength));
}

#[test]
fn sk_ends_the_chain_and_keeps_its_inner_type() {
    let msg = Message {
        header: header(ExchangeType::IKE_AUTH),
        payloads: vec![
            Payload::VendorId(b"bh".to_vec()),
            Payload::Sk(Encrypted {
                first_inner: PayloadType::IDI,
                body: vec![9; 40],
            }),
        ],
    };
    let bytes = msg.encode().unwrap();
    assert_eq!(Message::decode(&bytes).unwrap(), msg);
    // The SK header's Next Payload is the first inner payload type.
    assert_eq!(bytes[HEADER_LEN + 6], PayloadType::IDI.0);
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_transform() -> impl Strategy<Value = Transform> {
    (
        1u8..6,
        any::<u16>(),
        proptest::collection::vec(
            prop_oneof![
                (0u16..0x8000, any::<u16>()).prop_map(|(ty, value)| Attribute::Tv { ty, value }),
                (0u16..0x8000, arb_bytes(8)).prop_map(|(ty, value)| Attribute::Tlv { ty, value }),
            ],
            0..3,
        ),
    )
        .prop_map(|(ty, id, attributes)| Transform {
            ty: TransformType(ty),
            id,
            attributes,
        })
}

fn arb_ts() -> impl Strategy<Value = TrafficSelector> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        arb_bytes(16),
    )
        .prop_map(|(v6, ip_protocol, start_port, end_port, seed)| {
            let n = if v6 { 16 } else { 4 };
            let mut a = seed;
            a.resize(2 * n, 7);
            TrafficSelector {
                ts_type: if v6 {
                    TsType::TS_IPV6_ADDR_RANGE
                } else {
                    TsType::TS_IPV4_ADDR_RANGE
                },
                ip_protocol,
                start_port,
                end_port,
                start_addr: a[..n].to_vec(),
                end_addr: a[n..].to_vec(),
            }
        })
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        proptest::collection::vec(
            (
                any::<u8>(),
                1u8..4,
                prop_oneof![Just(0usize), Just(4), Just(8)],
                proptest::collection::vec(arb_transform(), 0..5)
            ),
            1..4
        )
        .prop_map(|ps| Payload::Sa(
            ps.into_iter()
                .map(|(num, proto, spi_len, transforms)| Proposal {
                    num,
                    protocol: ProtocolId(proto),
                    spi: vec![0x5a; spi_len],
                    transforms
                })
                .collect()
        )),
        (any::<u16>(), arb_bytes(64))
            .prop_map(|(group, data)| Payload::Ke(KeyExchange { group, data })),
        (any::<u8>(), arb_bytes(20)).prop_map(|(t, data)| Payload::IdI(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), arb_bytes(20)).prop_map(|(t, data)| Payload::IdR(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), arb_bytes(20)).prop_map(|(t, data)| Payload::Cert(Cert {
            encoding: CertEncoding(t),
            data
        })),
        (any::<u8>(), arb_bytes(20)).prop_map(|(t, data)| Payload::CertReq(Cert {
            encoding: CertEncoding(t),
            data
        })),
        (any::<u8>(), arb_bytes(64)).prop_map(|(t, data)| Payload::Auth(Auth {
            method: AuthMethod(t),
            data
        })),
        proptest::collection::vec(any::<u8>(), 16..64).prop_map(Payload::Nonce),
        (
            any::<u8>(),
            prop_oneof![Just(0usize), Just(4), Just(8)],
            any::<u16>(),
            arb_bytes(20)
        )
            .prop_map(|(p, spi_len, ty, data)| Payload::Notify(Notify {
                protocol: ProtocolId(p),
                spi: vec![3; spi_len],
                ty: NotifyType(ty),
                data
            })),
        (any::<u8>(), 0usize..5).prop_map(|(p, n)| Payload::Delete(Delete {
            protocol: ProtocolId(p),
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4]; n]
        })),
        arb_bytes(20).prop_map(Payload::VendorId),
        proptest::collection::vec(arb_ts(), 1..3).prop_map(Payload::TsI),
        proptest::collection::vec(arb_ts(), 1..3).prop_map(Payload::TsR),
        (
            any::<u8>(),
            proptest::collection::vec((0u16..0x8000, arb_bytes(8)), 0..3)
        )
            .prop_map(|(t, a)| Payload::Cp(Config {
                cfg_type: CfgType(t),
                attributes: a
                    .into_iter()
                    .map(|(ty, value)| CfgAttribute { ty, value })
                    .collect()
            })),
        (100u8..200, arb_bytes(10)).prop_map(|(t, data)| Payload::Unknown {
            ty: PayloadType(t),
            critical: false,
            data
        }),
    ]
}

proptest! {
    #[test]
    fn message_round_trip(
        exch in any::<u8>(), flags in any::<u8>(), mid in any::<u32>(),
        payloads in proptest::collection::vec(arb_payload(), 0..6),
        tail in prop_oneof![
            Just(None),
            (arb_bytes(40)).prop_map(|body| Some(Payload::Sk(Encrypted { first_inner: PayloadType::NOTIFY, body }))),
            (1u16..4, arb_bytes(40)).prop_map(|(number, body)| Some(Payload::Skf(EncryptedFragment { first_inner: PayloadType::IDI, number, total: 4, body }))),
        ],
    ) {
        let mut payloads = payloads;
        payloads.extend(tail);
        let msg = Message {
            header: Header { spi_i: [9; 8], spi_r: [8; 8], version: VERSION_2_0, exchange: ExchangeType(exch), flags, message_id: mid },
            payloads,
        };
        let bytes = msg.encode().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), msg.clone());
        prop_assert_eq!(Message::decode(&bytes).unwrap().encode().unwrap(), bytes);
    }

    #[test]
    fn decode_never_panics(data in arb_bytes(300)) {
        let _ = Message::decode(&data);
        let _ = decode_payloads(PayloadType::SA, &data);
    }
}

/// An IKE_SA_INIT request as strongSwan 5.9.8 sent it to this engine in the interop lab
/// (proposal aes256-sha1-modp1024), captured on the wire.
const STRONGSWAN_IKE_SA_INIT: &[&str] = &[
    "0841dec09c29ed930000000000000000212022080000000000000150220000300000002c010100040300000c0100000c",
    "800e01000300000803000002030000080200000200000008040000022800008800020000e9d33d3b15c446b976a698d4",
    "eb0370c752947a8b4d1538f9f86a6e093707b9a19a1ec3b98aca4b091cb6774c962a113909efe4e98b6225cb0d5ef301",
    "dbf181aea42c3af9ef5ab9630b5a061fb6cca22e8255249e70b12613ccbcd9e090cf2d4fc503ea6a78ee16205046d8a0",
    "2d6677c8720235cfa528455fc7cdfff1162bf7f729000024df2cfcaf3c6d00d4f2853400edc09682049d9883b1c1f8bc",
    "79476974a60144082900001c00004004b29dc0d9986c61e8ad6ba9626a56e0ead24a1f3d2900001c000040054cb3e58a",
    "563d72f1e2c4571543fdd989d362a580290000080000402e290000100000402f00020003000400050000000800004016",
];

#[test]
fn golden_strongswan_ike_sa_init_decodes_and_reencodes_byte_for_byte() {
    let bytes = hex::decode(STRONGSWAN_IKE_SA_INIT.concat()).unwrap();
    let msg = Message::decode(&bytes).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::IKE_SA_INIT);
    assert_eq!(msg.header.flags, FLAG_INITIATOR);
    let types: Vec<PayloadType> = msg.payloads.iter().map(Payload::ty).collect();
    assert_eq!(
        types[..3],
        [PayloadType::SA, PayloadType::KE, PayloadType::NONCE]
    );
    let Payload::Sa(props) = &msg.payloads[0] else {
        panic!("SA first")
    };
    assert_eq!(props.len(), 1);
    let t = &props[0].transforms;
    assert_eq!(t[0].ty, TransformType::ENCR);
    assert_eq!((t[0].id, t[0].key_length()), (encr::AES_CBC, Some(256)));
    assert!(t.iter().any(|t| t.ty == TransformType::DH && t.id == 2));
    let Payload::Ke(ke) = &msg.payloads[1] else {
        panic!("KE second")
    };
    assert_eq!((ke.group, ke.data.len()), (2, 128));
    for n in [
        NotifyType::NAT_DETECTION_SOURCE_IP,
        NotifyType::NAT_DETECTION_DESTINATION_IP,
        NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
        NotifyType::SIGNATURE_HASH_ALGORITHMS,
    ] {
        assert!(msg.notify(n).is_some(), "{n:?}");
    }
    // REDIRECT_SUPPORTED (16406) is not in the registry here and survives as a number.
    assert!(msg.notify(NotifyType(16406)).is_some());
    assert_eq!(msg.encode().unwrap(), bytes);
}
