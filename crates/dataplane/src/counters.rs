//! Dataplane counters that belong to no SA: per tunnel and for the whole dataplane.
//!
//! Workers add to them once per batch, never once per packet.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident / $snap:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: AtomicU64,)*
        }

        /// A point-in-time copy of the counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $snap {
            $($(#[$fm])* pub $field: u64,)*
        }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($field: self.$field.load(Ordering::Relaxed),)* }
            }

            /// Adds a batch's tally.
            pub fn add(&self, t: &$snap) {
                $(if t.$field != 0 { self.$field.fetch_add(t.$field, Ordering::Relaxed); })*
            }
        }
    };
}

counters!(
    /// Per-tunnel counters of the paths around the SAs.
    TunnelCounters / TunnelSnapshot {
        /// Inner packets read from the TUN device.
        tun_rx_packets,
        /// Inner packets written to the TUN device.
        tun_tx_packets,
        /// Packets read from the TUN device that were not IPv4 or IPv6.
        tun_rx_invalid,
        /// Packets dropped because no outbound SA is installed (tunnel down).
        no_sa,
        /// IPv4 packets fragmented before encryption (DF clear, larger than the tunnel MTU).
        fragmented,
        /// ICMP fragmentation-needed / packet-too-big messages sent back.
        icmp_too_big,
        /// Oversized packets dropped without an ICMP answer.
        oversize_dropped,
        /// TCP SYNs whose MSS was lowered.
        mss_clamped,
        /// ESP packets the socket refused to send.
        send_errors,
        /// Inner packets the TUN device refused.
        tun_write_errors,
        /// NAT keepalives sent.
        keepalives_sent,
    }
);

counters!(
    /// Counters of datagrams that could not be tied to any tunnel.
    GlobalCounters / GlobalSnapshot {
        /// Datagrams received on the ESP sockets.
        rx_datagrams,
        /// Datagrams too short or malformed to be ESP, IKE or a keepalive (RFC 3948 §2.2).
        malformed,
        /// Datagrams larger than the receive buffer.
        truncated,
        /// ESP packets whose SPI matches no inbound SA.
        unknown_spi,
        /// IKE messages (non-ESP marker) received on the ESP port.
        ike,
        /// IKE messages dropped: no IKE engine, or its queue was full.
        ike_dropped,
        /// NAT keepalives received.
        keepalives,
    }
);
