//! bridgehead's benchmarks. This library is empty; the benchmarks are:
//!
//! - `benches/crypto.rs` (criterion): `bh_crypto::EspTransform::seal`/`open` of one whole ESP
//!   packet for every suite at inner sizes 64, 512 and 1400 bytes, beside `ring`'s raw
//!   AES-128/256-GCM and ChaCha20-Poly1305 over the same ciphertext length.
//! - `benches/esp.rs` (criterion): `bh_esp::OutboundSa::seal_batch` and
//!   `bh_esp::InboundSa::open_batch` over batches of 32 `PacketBuf`s per suite and size, beside
//!   `ring`'s raw AEAD over 32 buffers.
//! - `micro` (bash): runs `cargo bench -p bh-benches` and prints one table: our ns per packet,
//!   raw ns per packet, ratio, Gbit/s.
//! - `throughput` (bash, root): iperf3 TCP between two LAN namespaces through two gateways and
//!   a 1:1 NAT, without a tunnel, with strongSwan (kernel-libipsec), boringtun and bridgehead,
//!   printing Gbit/s, ratios and gateway CPU seconds per GB.
//! - `packets` (bash, root): on the same topology, 1400-byte UDP packets from many flows
//!   (packets/s, loss, gateway CPU per packet), a fixed-rate TCP load, and memory with many
//!   tunnels. Its UDP load is `udpblast` (below) or, with `--sender iperf3`, iperf3.
//! - `udpblast/` (binary, `cargo build --release -p bh-benches --bin udpblast`): `udpblast
//!   send` offers N flows of fixed-size datagrams with `sendmmsg` (no GSO); `udpblast recv`
//!   counts them with `recvmmsg` and UDP GRO. Each prints one JSON line.
//!
//! None of them is a test: they assert only that what they time succeeded.
