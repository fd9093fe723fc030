//! IANA IKEv2 registries as newtypes with named constants. Unknown values are kept as they
//! are, so they survive a decode/encode round trip.

macro_rules! registry {
    ($(#[$m:meta])* $name:ident($repr:ty) { $($(#[$vm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$vm])* pub const $c: Self = Self($v);)*

            /// The IANA name of a known value.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$c => Some(stringify!($c)),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    };
}

registry! {
    /// Exchange Type (RFC 7296 §3.1).
    ExchangeType(u8) {
        /// IKE_SA_INIT.
        IKE_SA_INIT = 34,
        /// IKE_AUTH.
        IKE_AUTH = 35,
        /// CREATE_CHILD_SA.
        CREATE_CHILD_SA = 36,
        /// INFORMATIONAL.
        INFORMATIONAL = 37,
    }
}

registry! {
    /// Payload Type (RFC 7296 §3.2, RFC 7383 §2.5).
    PayloadType(u8) {
        /// No Next Payload.
        NONE = 0,
        /// Security Association.
        SA = 33,
        /// Key Exchange.
        KE = 34,
        /// Identification - Initiator.
        IDI = 35,
        /// Identification - Responder.
        IDR = 36,
        /// Certificate.
        CERT = 37,
        /// Certificate Request.
        CERTREQ = 38,
        /// Authentication.
        AUTH = 39,
        /// Nonce.
        NONCE = 40,
        /// Notify.
        NOTIFY = 41,
        /// Delete.
        DELETE = 42,
        /// Vendor ID.
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator.
        TSI = 44,
        /// Traffic Selector - Responder.
        TSR = 45,
        /// Encrypted and Authenticated.
        SK = 46,
        /// Configuration.
        CP = 47,
        /// Extensible Authentication.
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383).
        SKF = 53,
    }
}

registry! {
    /// Notify Message Type (RFC 7296 §3.10.1 and later RFCs).
    NotifyType(u16) {
        /// UNSUPPORTED_CRITICAL_PAYLOAD.
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// INVALID_IKE_SPI.
        INVALID_IKE_SPI = 4,
        /// INVALID_MAJOR_VERSION.
        INVALID_MAJOR_VERSION = 5,
        /// INVALID_SYNTAX.
        INVALID_SYNTAX = 7,
        /// INVALID_MESSAGE_ID.
        INVALID_MESSAGE_ID = 9,
        /// INVALID_SPI.
        INVALID_SPI = 11,
        /// NO_PROPOSAL_CHOSEN.
        NO_PROPOSAL_CHOSEN = 14,
        /// INVALID_KE_PAYLOAD.
        INVALID_KE_PAYLOAD = 17,
        /// AUTHENTICATION_FAILED.
        AUTHENTICATION_FAILED = 24,
        /// SINGLE_PAIR_REQUIRED.
        SINGLE_PAIR_REQUIRED = 34,
        /// NO_ADDITIONAL_SAS.
        NO_ADDITIONAL_SAS = 35,
        /// INTERNAL_ADDRESS_FAILURE.
        INTERNAL_ADDRESS_FAILURE = 36,
        /// FAILED_CP_REQUIRED.
        FAILED_CP_REQUIRED = 37,
        /// TS_UNACCEPTABLE.
        TS_UNACCEPTABLE = 38,
        /// INVALID_SELECTORS.
        INVALID_SELECTORS = 39,
        /// TEMPORARY_FAILURE.
        TEMPORARY_FAILURE = 43,
        /// CHILD_SA_NOT_FOUND.
        CHILD_SA_NOT_FOUND = 44,
        /// INITIAL_CONTACT.
        INITIAL_CONTACT = 16384,
        /// SET_WINDOW_SIZE.
        SET_WINDOW_SIZE = 16385,
        /// ADDITIONAL_TS_POSSIBLE.
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// IPCOMP_SUPPORTED.
        IPCOMP_SUPPORTED = 16387,
        /// NAT_DETECTION_SOURCE_IP.
        NAT_DETECTION_SOURCE_IP = 16388,
        /// NAT_DETECTION_DESTINATION_IP.
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// COOKIE.
        COOKIE = 16390,
        /// USE_TRANSPORT_MODE.
        USE_TRANSPORT_MODE = 16391,
        /// HTTP_CERT_LOOKUP_SUPPORTED.
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// REKEY_SA.
        REKEY_SA = 16393,
        /// ESP_TFC_PADDING_NOT_SUPPORTED.
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// NON_FIRST_FRAGMENTS_ALSO.
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// MOBIKE_SUPPORTED (RFC 4555).
        MOBIKE_SUPPORTED = 16396,
        /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// Whether this is an error type (values below 16384, RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

registry! {
    /// Security Protocol Identifier (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        /// No protocol (Notify payloads about the IKE SA).
        NONE = 0,
        /// IKE.
        IKE = 1,
        /// AH.
        AH = 2,
        /// ESP.
        ESP = 3,
    }
}

registry! {
    /// Transform Type (RFC 7296 §3.3.2).
    TransformType(u8) {
        /// Encryption Algorithm (ENCR).
        ENCR = 1,
        /// Pseudorandom Function (PRF).
        PRF = 2,
        /// Integrity Algorithm (INTEG).
        INTEG = 3,
        /// Diffie-Hellman Group (D-H).
        DH = 4,
        /// Extended Sequence Numbers (ESN).
        ESN = 5,
    }
}

registry! {
    /// Identification Type (RFC 7296 §3.5).
    IdType(u8) {
        /// ID_IPV4_ADDR.
        ID_IPV4_ADDR = 1,
        /// ID_FQDN.
        ID_FQDN = 2,
        /// ID_RFC822_ADDR.
        ID_RFC822_ADDR = 3,
        /// ID_IPV6_ADDR.
        ID_IPV6_ADDR = 5,
        /// ID_DER_ASN1_DN.
        ID_DER_ASN1_DN = 9,
        /// ID_DER_ASN1_GN.
        ID_DER_ASN1_GN = 10,
        /// ID_KEY_ID.
        ID_KEY_ID = 11,
    }
}

registry! {
    /// Authentication Method (RFC 7296 §3.8).
    AuthMethod(u8) {
        /// RSA Digital Signature.
        RSA_SIG = 1,
        /// Shared Key Message Integrity Code.
        SHARED_KEY_MIC = 2,
        /// DSS Digital Signature.
        DSS_SIG = 3,
        /// Digital Signature (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// Traffic Selector Type (RFC 7296 §3.13.1).
    TsType(u8) {
        /// TS_IPV4_ADDR_RANGE.
        TS_IPV4_ADDR_RANGE = 7,
        /// TS_IPV6_ADDR_RANGE.
        TS_IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// Configuration payload type (RFC 7296 §3.15).
    CfgType(u8) {
        /// CFG_REQUEST.
        CFG_REQUEST = 1,
        /// CFG_REPLY.
        CFG_REPLY = 2,
        /// CFG_SET.
        CFG_SET = 3,
        /// CFG_ACK.
        CFG_ACK = 4,
    }
}

registry! {
    /// Certificate Encoding (RFC 7296 §3.6).
    CertEncoding(u8) {
        /// X.509 Certificate - Signature.
        X509_SIGNATURE = 4,
        /// Raw RSA Key.
        RAW_RSA_KEY = 11,
        /// Hash and URL of X.509 certificate.
        HASH_URL_X509 = 12,
    }
}

/// Transform IDs of type ENCR (RFC 7296 §3.3.2, RFC 5282, RFC 7634).
pub mod encr {
    /// ENCR_3DES.
    pub const DES3: u16 = 3;
    /// ENCR_AES_CBC (RFC 3602), with a Key Length attribute.
    pub const AES_CBC: u16 = 12;
    /// ENCR_AES_GCM_16 (RFC 4106 / RFC 5282), with a Key Length attribute.
    pub const AES_GCM_16: u16 = 20;
    /// ENCR_CHACHA20_POLY1305 (RFC 7634), no Key Length attribute.
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// Transform IDs of type INTEG (RFC 7296 §3.3.2, RFC 4868).
pub mod integ {
    /// NONE (with AEAD ciphers).
    pub const NONE: u16 = 0;
    /// AUTH_HMAC_SHA1_96.
    pub const HMAC_SHA1_96: u16 = 2;
    /// AUTH_HMAC_SHA2_256_128.
    pub const HMAC_SHA2_256_128: u16 = 12;
    /// AUTH_HMAC_SHA2_384_192.
    pub const HMAC_SHA2_384_192: u16 = 13;
    /// AUTH_HMAC_SHA2_512_256.
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// Transform attribute type Key Length (RFC 7296 §3.3.5), always in TV format.
pub const ATTR_KEY_LENGTH: u16 = 14;
