//! The ESP dataplane of bridgehead: per-core workers between TUN queues and sockets.
//!
//! ```text
//!  TUN bh-<tunnel> queue k ──► worker k: MTU/DF check, MSS clamp, seal ──► UDP 4500 socket k / raw ESP
//!  UDP socket k / raw ESP  ──► worker k: RFC 3948 demux, open (anti-replay) ──► TUN queue k
//! ```
//!
//! One worker thread per core, each with its own queue of every tunnel's multi-queue TUN device
//! and its own `SO_REUSEPORT` UDP socket, moving batches of packets with no allocation and no
//! lock per packet. SAs come from a lock-free table ([`SaTableHandle`]) that the control plane
//! publishes to; a worker loads it once per batch.
//!
//! Offloads, because the kernel's per-packet path (about 5 µs per packet on a small VM), not
//! crypto, is what limits a userspace tunnel:
//! - ESP in UDP leaves with UDP GSO: each run of equal-size sealed packets is one `sendmsg`
//!   with `UDP_SEGMENT`, gathered from the packet buffers without a copy (falling back to one
//!   datagram per packet if the kernel answers `EIO`/`EINVAL`). Raw ESP uses `sendmmsg`.
//! - ESP in UDP arrives with UDP GRO: one buffer holds up to 64 datagrams of one sender.
//! - TUN queues opened with `IFF_VNET_HDR` (see [`bh_sys::tun::TunOptions`]; detected per queue)
//!   hand over TSO/USO super-packets of up to 64 KiB, which [`offload::Splitter`] cuts into
//!   ordinary packets before sealing; opened TCP segments of one flow are merged by
//!   [`offload::Coalescer`] and written as one GSO super-packet. Plain queues still work,
//!   one packet per `read`/`write`.
//!
//! Which worker opens a tunnel's ESP: with several workers, the UDP sockets steer ESP in UDP
//! by SPI ([`worker_of_spi`]: SPI modulo the worker count), and the IKE engine picks each
//! tunnel's inbound SPIs so that tunnels spread evenly over the workers. Otherwise the kernel's
//! 4-tuple hash would put a tunnel (one 4-tuple) on a worker at random, several tunnels often on
//! the same one. A TUN queue's flow table then sends each flow's outgoing packets to the worker
//! that wrote its incoming ones, so a tunnel's traffic stays on its worker both ways.
//!
//! Sequence numbers are reserved per sealed batch (one atomic), so two workers sending on one
//! SA interleave blocks of at most [`BATCH`] numbers, well inside the peer's replay window.
//!
//! Tunnels can be added and removed while the workers run ([`Dataplane::add_tunnel`],
//! [`Dataplane::remove_tunnel`], for configuration reload): the tunnel list is a set of
//! write-once slots read without locks ([`TunnelSlots`]) and each worker takes its new or
//! closed TUN queues from a command mailbox woken through its epoll set, between batches.
//!
//! What it does not do: negotiate keys (that is IKE's), configure devices or routes (the daemon
//! does that before handing over the queues, including whether they carry virtio headers), or
//! read any configuration file.

mod counters;
pub mod offload;
mod slots;
mod table;
mod worker;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use bh_sys::poll::EventFd;
use bh_sys::tun::TunQueue;

pub use counters::{GlobalCounters, GlobalSnapshot, TunnelCounters, TunnelSnapshot};
pub use slots::{MAX_TUNNELS, TunnelSlots};
pub use table::{InboundEntry, SaTable, SaTableHandle};

use slots::{Command, Mailbox};

/// Packets moved per batch (the most `recvmmsg`/`sendmmsg` take per call).
pub const BATCH: usize = bh_sys::MAX_BATCH;

/// The worker (of `workers`) whose socket receives ESP in UDP with inbound SPI `spi`, once
/// [`Dataplane::start`] has set the sockets' steering (with more than one worker).
pub fn worker_of_spi(spi: u32, workers: usize) -> usize {
    let n = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    usize::try_from(spi % n).unwrap_or(0)
}

/// How ESP leaves the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// ESP in UDP (RFC 3948).
    Udp,
    /// Raw ESP, IP protocol 50.
    Esp,
}

/// Settings shared by all tunnels.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Worker threads; every tunnel must hand over this many TUN queues.
    pub workers: usize,
    /// Local address of the ESP sockets.
    pub bind: IpAddr,
    /// Local UDP port (4500).
    pub udp_port: u16,
    /// Socket buffer size in bytes.
    pub socket_buffer: usize,
    /// Pin worker `k` to core `k % cores`.
    pub pin: bool,
    /// Also open a raw ESP socket (some tunnel uses `Encap::Esp`).
    pub raw_esp: bool,
    /// The largest datagram or inner packet handled (underlay MTU or more).
    pub max_packet: usize,
    /// Where IKE messages that arrive on the ESP port (after the non-ESP marker, RFC 3948
    /// §2.2) go; `None` drops them (counted as `ike`).
    pub ike: Option<SyncSender<IkeDatagram>>,
}

/// An IKE message received on the ESP port, handed to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeDatagram {
    /// Who sent it.
    pub src: SocketAddr,
    /// The local address and port it arrived on.
    pub local: SocketAddr,
    /// The IKE message, without the non-ESP marker.
    pub data: Vec<u8>,
}

/// One tunnel as the dataplane sees it.
#[derive(Debug)]
pub struct TunnelConfig {
    /// Name, for logs and status.
    pub name: String,
    /// One TUN queue per worker. Queues opened with `IFF_VNET_HDR` (and `TUNSETOFFLOAD`) are
    /// detected and get segmentation and coalescing; plain ones move one packet per syscall.
    pub queues: Vec<TunQueue>,
    /// The peer's ESP address (port ignored for raw ESP).
    pub peer: SocketAddr,
    /// Encapsulation.
    pub encap: Encap,
    /// Largest inner packet sent into the tunnel; larger ones are fragmented or answered with
    /// ICMP (RFC 1191, RFC 8201).
    pub mtu: u16,
    /// Clamp the TCP MSS of SYNs to this value for IPv4 (IPv6 gets 20 less); `None` = off.
    pub mss: Option<u16>,
    /// Source address for ICMPv4 errors (the tunnel's inside IPv4 address).
    pub icmp_src_v4: Option<IpAddr>,
    /// Source address for ICMPv6 errors (the tunnel's inside IPv6 address).
    pub icmp_src_v6: Option<IpAddr>,
    /// NAT keepalive interval for ESP in UDP (RFC 3948 §2.3).
    pub keepalive: Option<Duration>,
}

/// What workers share about one tunnel.
#[derive(Debug)]
pub struct TunnelState {
    /// Name.
    pub name: String,
    /// Encapsulation.
    pub encap: Encap,
    /// Where ESP goes: updated when authenticated ESP arrives from a new address (NAT rebinding).
    pub peer: ArcSwap<SocketAddr>,
    /// Tunnel MTU.
    pub mtu: u16,
    /// MSS clamp for IPv4 SYNs.
    pub mss: Option<u16>,
    /// ICMPv4 error source.
    pub icmp_src_v4: Option<IpAddr>,
    /// ICMPv6 error source.
    pub icmp_src_v6: Option<IpAddr>,
    /// NAT keepalive interval.
    pub keepalive: Option<Duration>,
    /// Counters.
    pub counters: TunnelCounters,
}

impl TunnelState {
    /// The shared state of `t`, and its queues (one per worker).
    fn new(t: TunnelConfig) -> (Self, Vec<TunQueue>) {
        (
            Self {
                name: t.name,
                encap: t.encap,
                peer: ArcSwap::from_pointee(t.peer),
                mtu: t.mtu,
                mss: t.mss,
                icmp_src_v4: t.icmp_src_v4,
                icmp_src_v6: t.icmp_src_v6,
                keepalive: t.keepalive,
                counters: TunnelCounters::default(),
            },
            t.queues,
        )
    }
}

pub(crate) struct Shared {
    pub(crate) table: SaTableHandle,
    pub(crate) tunnels: TunnelSlots,
    pub(crate) global: GlobalCounters,
    /// Datagrams each worker's UDP socket received (index: worker), which shows where the
    /// socket steering put each tunnel.
    pub(crate) worker_rx: Box<[AtomicU64]>,
    pub(crate) ike: Option<SyncSender<IkeDatagram>>,
    pub(crate) local: SocketAddr,
}

/// A running dataplane. Dropping it stops the workers.
pub struct Dataplane {
    shared: Arc<Shared>,
    stop: Arc<EventFd>,
    threads: Vec<JoinHandle<()>>,
    control_socket: Arc<bh_sys::udp::UdpSocket>,
    /// One per worker, in worker order.
    mailboxes: Vec<Arc<Mailbox>>,
    /// Whether the raw ESP socket is open (tunnels with `Encap::Esp` need it).
    raw_esp: bool,
}

/// How long [`Dataplane::remove_tunnel`] waits for each worker to close its queue.
const REMOVE_WAIT: Duration = Duration::from_secs(2);

impl Dataplane {
    /// Opens the sockets and starts one worker per configured worker slot.
    pub fn start(cfg: &DataplaneConfig, tunnels: Vec<TunnelConfig>) -> io::Result<Self> {
        if cfg.workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "workers must be at least 1",
            ));
        }
        if tunnels.len() > MAX_TUNNELS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than {MAX_TUNNELS} tunnels"),
            ));
        }
        let mut per_worker: Vec<Vec<TunQueue>> = (0..cfg.workers).map(|_| Vec::new()).collect();
        let states = TunnelSlots::new();
        let count = tunnels.len();
        for t in tunnels {
            if t.queues.len() != cfg.workers {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "tunnel {} has {} queues for {} workers",
                        t.name,
                        t.queues.len(),
                        cfg.workers
                    ),
                ));
            }
            let (state, queues) = TunnelState::new(t);
            for (w, q) in queues.into_iter().enumerate() {
                per_worker[w].push(q);
            }
            let _ = states.push(state);
        }
        let shared = Arc::new(Shared {
            table: SaTableHandle::new(count),
            tunnels: states,
            global: GlobalCounters::default(),
            worker_rx: (0..cfg.workers).map(|_| AtomicU64::new(0)).collect(),
            ike: cfg.ike.clone(),
            local: SocketAddr::new(cfg.bind, cfg.udp_port),
        });
        let stop = Arc::new(EventFd::new()?);
        // Raw ESP: one socket shared by all workers, so each packet is read once.
        let raw = if cfg.raw_esp {
            Some(Arc::new(bh_sys::rawesp::RawEsp::bind(
                cfg.bind,
                cfg.socket_buffer,
            )?))
        } else {
            None
        };
        let cores = bh_sys::cpu::online_cpus().max(1);
        let mut threads = Vec::with_capacity(cfg.workers);
        let mut control_socket = None;
        let mut mailboxes = Vec::with_capacity(cfg.workers);
        // All sockets first, in worker order (a socket's index in the SO_REUSEPORT group is
        // its bind order), then the steering, then the workers: nothing that arrives once
        // the workers run is placed by the kernel's hash instead.
        let mut sockets = Vec::with_capacity(cfg.workers);
        for _ in 0..cfg.workers {
            sockets.push(Arc::new(bh_sys::udp::UdpSocket::bind(
                SocketAddr::new(cfg.bind, cfg.udp_port),
                &bh_sys::udp::UdpOptions {
                    reuse_port: true,
                    buffer: cfg.socket_buffer,
                },
            )?));
        }
        if let (Some(first), true) = (sockets.first(), cfg.workers > 1) {
            // ESP in UDP goes to the worker its SPI names (SPI mod workers); the IKE engine
            // picks inbound SPIs so that tunnels spread evenly (see [`worker_of_spi`]).
            let n = u32::try_from(cfg.workers).unwrap_or(u32::MAX);
            match first.steer_by_first_word(n) {
                Ok(()) => tracing::debug!(workers = n, "ESP in UDP steered to workers by SPI"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not steer ESP by SPI; the kernel's 4-tuple hash picks the worker"
                ),
            }
        }
        for ((id, queues), udp) in per_worker.into_iter().enumerate().zip(sockets) {
            let mailbox = Arc::new(Mailbox::new()?);
            mailboxes.push(Arc::clone(&mailbox));
            if control_socket.is_none() {
                control_socket = Some(Arc::clone(&udp));
            }
            let w = worker::Worker::new(
                id,
                Arc::clone(&shared),
                queues,
                udp,
                raw.clone(),
                Arc::clone(&stop),
                cfg.max_packet,
                mailbox,
            )?;
            let pin = cfg.pin.then_some(id % cores);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("bh-worker-{id}"))
                    .spawn(move || {
                        if let Some(core) = pin {
                            if let Err(e) = bh_sys::cpu::pin_current_thread(core) {
                                tracing::warn!(worker = id, core, error = %e, "could not pin worker");
                            }
                        }
                        w.run();
                    })?,
            );
        }
        let control_socket = control_socket
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no worker"))?;
        Ok(Self {
            shared,
            stop,
            threads,
            control_socket,
            mailboxes,
            raw_esp: cfg.raw_esp,
        })
    }

    /// Adds a tunnel while the workers run and returns its index: its state gets the next
    /// slot of [`Dataplane::tunnels`] and each worker starts serving its queue after its
    /// current batch. Fails if the tunnel does not bring one queue per worker, needs the raw
    /// ESP socket this dataplane did not open, or [`MAX_TUNNELS`] were already added.
    pub fn add_tunnel(&self, t: TunnelConfig) -> io::Result<usize> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if t.queues.len() != self.mailboxes.len() {
            return Err(invalid(format!(
                "tunnel {} has {} queues for {} workers",
                t.name,
                t.queues.len(),
                self.mailboxes.len()
            )));
        }
        if t.encap == Encap::Esp && !self.raw_esp {
            return Err(invalid(format!(
                "tunnel {} uses raw ESP, and the raw ESP socket opens only at start",
                t.name
            )));
        }
        let keepalive = t.encap == Encap::Udp && t.keepalive.is_some();
        let (state, queues) = TunnelState::new(t);
        let index = self
            .shared
            .tunnels
            .push(state)
            .ok_or_else(|| invalid(format!("all {MAX_TUNNELS} tunnel slots are used")))?;
        for (w, (mb, queue)) in self.mailboxes.iter().zip(queues).enumerate() {
            mb.send(Command::Add {
                index,
                queue,
                keepalive: keepalive && w == 0,
            })?;
        }
        Ok(index)
    }

    /// Removes tunnel `index` while the workers run: its SAs leave the SA table, and each
    /// worker closes its queue (the TUN device, its addresses and routes go with the last
    /// one). Returns once every worker has closed it, or fails after a bounded wait.
    pub fn remove_tunnel(&self, index: usize) -> io::Result<()> {
        self.shared.table.remove_tunnel(index);
        let mut waits = Vec::with_capacity(self.mailboxes.len());
        for mb in &self.mailboxes {
            let (done, rx) = std::sync::mpsc::sync_channel(1);
            mb.send(Command::Remove { index, done })?;
            waits.push(rx);
        }
        for rx in waits {
            rx.recv_timeout(REMOVE_WAIT).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("a worker did not close tunnel {index}'s queue"),
                )
            })?;
        }
        Ok(())
    }

    /// The SA table, to install and remove SAs.
    pub fn sas(&self) -> &SaTableHandle {
        &self.shared.table
    }

    /// The tunnels by index: those started with, in configuration order, then those added
    /// (removed ones keep their slot).
    pub fn tunnels(&self) -> &TunnelSlots {
        &self.shared.tunnels
    }

    /// Counters of traffic that belongs to no tunnel.
    pub fn global(&self) -> GlobalSnapshot {
        self.shared.global.snapshot()
    }

    /// Datagrams received by each worker's UDP socket (index: worker), IKE and keepalives
    /// included; raw ESP is not in it (one socket shared by all workers).
    pub fn worker_rx(&self) -> Vec<u64> {
        self.shared
            .worker_rx
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Sends an IKE message from the ESP port (port 4500 floating, RFC 7296 §2.23): the
    /// non-ESP marker is prepended here.
    pub fn send_ike(&self, dst: SocketAddr, msg: &[u8]) -> io::Result<()> {
        let mut framed = Vec::with_capacity(msg.len() + 4);
        framed.extend_from_slice(&bh_esp::wire::NON_ESP_MARKER);
        framed.extend_from_slice(msg);
        self.control_socket.send_to(&framed, dst).map(|_| ())
    }

    /// The local address and port of the ESP sockets.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// How many workers run (each with its own UDP socket and TUN queues).
    pub fn workers(&self) -> usize {
        self.mailboxes.len()
    }

    /// Stops the workers and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.notify();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
