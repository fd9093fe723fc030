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
