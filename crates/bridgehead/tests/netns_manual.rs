//! Two bridgehead daemons with a manual-key tunnel, in network namespaces, for every ESP suite.
//!
//! Each test builds the lab topology (`bridgehead::lab`): two LANs, two gateways running the real
//! `bridgehead daemon` binary, and a 1:1 NAT between them, so ESP travels in UDP. It checks what
//! a user would: traffic both ways over IPv4 and IPv6; that a replayed packet, a packet with a
//! bad ICV and garbage on UDP 4500 are dropped and counted; and that the tunnel keeps working
//! after each. Needs root (CI runs as root) plus iproute2, nftables, ping and python3.

mod common;

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use bh_crypto::EspSuite;
use bridgehead::lab::{Host, Lab, LabOptions, addr};
use serde_json::Value;

fn lab(suite: &str, esn: bool) -> Lab {
    lab_with(suite, |o| o.esn = esn)
}

/// Builds and starts a lab with `suite`, after `tweak` has adjusted its options.
fn lab_with(suite: &str, tweak: impl FnOnce(&mut LabOptions)) -> Lab {
    let prefix = common::unique_prefix("bht");
    let mut opts = LabOptions::new(&prefix).unwrap();
    opts.binary = env!("CARGO_BIN_EXE_bridgehead").into();
    opts.suite = EspSuite::from_name(suite).unwrap();
    opts.workers = 2;
    tweak(&mut opts);
    let mut lab = Lab::build(opts).expect("lab topology");
    lab.start_daemons().expect("daemons start");
    lab
}

fn tunnel(st: &Value) -> &Value {
    &st["tunnels"][0]
}

fn counter(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a counter: {v}"))
}

fn assert_pings(lab: &Lab, what: &str) {
    for (from, dst) in [
        (Host::LanA, addr::LANB),
        (Host::LanB, addr::LANA),
        (Host::LanA, addr::LANB6),
        (Host::LanB, addr::LANA6),
    ] {
        let mut got = lab.ping(from, dst, 3, 200).unwrap();
        let mut sent = 3;
        if got < 2 {
            // A rare multi-second stall, seen only on a heavily loaded machine and not yet
            // explained (closing note of issue #6; `--nocapture` shows this report even when
            // the second round passes). The tunnel must then carry a second, longer round: a
            // tunnel that the step before really broke fails both.
            eprintln!(
                "{what}: ping {from:?} -> {dst}: {got}/3 replies; once more\ngwa drops:\n{}\ngwb drops:\n{}\nnat drops:\n{}",
                drops(lab, Host::GwA),
                drops(lab, Host::GwB),
                drops(lab, Host::Nat)
            );
            got = lab.ping(from, dst, 5, 200).unwrap();
            sent = 5;
        }
        assert!(
            got + 1 >= sent,
            "{what}: ping {from:?} -> {dst}: {got}/{sent} replies\n--- gwa log ---\n{}\n--- gwb log ---\n{}\n--- gwa status ---\n{:#}\n--- gwb status ---\n{:#}",
            lab.log(Host::GwA),
            lab.log(Host::GwB),
            lab.status(Host::GwA).unwrap_or_default(),
            lab.status(Host::GwB).unwrap_or_default()
        );
    }
}

/// The kernel's UDP and IP drop counters in `host`'s namespace, its UDP sockets with their
/// queues, owners and inodes (`ss` lists reuseport sockets newest first: the last one on 4500
/// is worker 0's), the TUN device's counters, and for the daemon: each thread's state and
/// wait channel, and which descriptors each epoll instance watches. For a failure message:
/// it tells a worker that stopped polling from datagrams that never arrived.
fn drops(lab: &Lab, host: Host) -> String {
    const SCRIPT: &str = r#"
nstat -az 2>/dev/null | grep -E 'Udp|Discard|NoRoutes|Drop' | grep -v ' 0 '
ss -uanmpe
ip -s link show bh-lab 2>/dev/null
for p in $(ss -uanp 'sport = :4500' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
  for t in /proc/$p/task/*; do
    echo "thread ${t##*/} $(cat $t/comm) wchan=$(cat $t/wchan) state/utime/stime/cpu=$(cut -d' ' -f3,14,15,39 $t/stat)"
  done
  for fd in /proc/$p/fd/*; do
    link=$(readlink $fd)
    echo "fd ${fd##*/} -> $link"
    if [ "$link" = 'anon_inode:[eventpoll]' ]; then grep tfd /proc/$p/fdinfo/${fd##*/}; fi
  done
done
sleep 1
echo '1 s later:'
ss -uanm 'sport = :4500'
"#;
    lab.ns
        .exec(&lab.name(host), "sh")
        .args(["-c", SCRIPT])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Captures, on the NAT's public side, one ESP-in-UDP datagram that gwa sent to gwb, while
/// lana pings lanb. Returns the UDP payload (the ESP packet).
fn capture_esp(lab: &Lab) -> Vec<u8> {
    let script = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("b0", 0))
s.settimeout(1.0)
print("ready", flush=True)
deadline = time.time() + 8
while time.time() < deadline:
    try:
        f = s.recv(65535)
    except socket.timeout:
        continue
    if f[12:14] != b"\x08\x00":
        continue
    ip = f[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 17 or ip[12:16] != socket.inet_aton(sys.argv[1]):
        continue
    udp = ip[ihl:]
    if int.from_bytes(udp[2:4], "big") != 4500:
        continue
    p = udp[8:int.from_bytes(udp[4:6], "big")]
    if len(p) > 60 and p[:4] != b"\0\0\0\0":
        print(p.hex(), flush=True)
        sys.exit(0)
sys.exit(1)
"#;
    let mut cap = lab
        .ns
        .exec(&lab.name(Host::Nat), "python3")
        .args(["-c", script, addr::GWA_PUBLIC])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 capture");
    let mut lines = std::io::BufReader::new(cap.stdout.take().expect("stdout")).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("ready"), "capture did not start");
    // Ping until the capture has seen a packet (bounded: the capture gives up after 8 s).
    let pinger = {
        let ns = lab.name(Host::LanA);
        std::thread::spawn(move || {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", &ns, "ping", "-n", "-q", "-c", "10", "-i", "0.2",
                ])
                .args(["-s", "300", addr::LANB])
                .stdout(Stdio::null())
                .status();
        })
    };
    let hex = lines.next().and_then(Result::ok).unwrap_or_default();
    let status = cap.wait().expect("capture finished");
    let _ = pinger.join();
    assert!(status.success(), "no ESP datagram captured on the NAT");
    hex::decode(hex.trim()).expect("hex from capture")
}

fn check_suite(suite: &str, esn: bool) {
    let lab = lab(suite, esn);
    assert_pings(&lab, "fresh tunnel");

    let before = lab.status(Host::GwB).unwrap();
    let t = tunnel(&before);
    assert_eq!(t["suite"], suite);
    assert_eq!(t["esn"], esn);
    assert!(
        counter(&t["inbound"]["packets"]) >= 6,
        "gwb opened nothing: {t}"
    );
    assert_eq!(counter(&t["inbound"]["drops"]["replay"]), 0);
    assert_eq!(counter(&t["inbound"]["drops"]["icv"]), 0);
    check_steering(&lab);

    // 1. Replay: an ESP packet gwb has already accepted, sent again from the NAT.
    let esp = capture_esp(&lab);
    assert_eq!(&esp[..4], &0x1001u32.to_be_bytes(), "captured SPI");
    let s0 = lab.status(Host::GwB).unwrap();
    let replay0 = counter(&tunnel(&s0)["inbound"]["drops"]["replay"]);
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &esp)
        .unwrap();
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &esp)
        .unwrap();
    let s1 = wait_for(&lab, |s| {
        counter(&tunnel(s)["inbound"]["drops"]["replay"]) >= replay0 + 2
    });
    assert_eq!(
        counter(&tunnel(&s1)["inbound"]["drops"]["replay"]),
        replay0 + 2,
        "both replays counted: {s1}"
    );
    assert_pings(&lab, "after replay");

    // 2. Bad ICV: the same packet moved far ahead in sequence (so it is not a replay) with its
    //    last ICV octet flipped; the sequence number is authenticated too.
    let mut forged = esp.clone();
    let seq = u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]]);
    forged[4..8].copy_from_slice(&(seq + 100_000).to_be_bytes());
    if let Some(last) = forged.last_mut() {
        *last ^= 0x5a;
    }
    let icv0 = counter(&tunnel(&s1)["inbound"]["drops"]["icv"]);
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &forged)
        .unwrap();
    let s2 = wait_for(&lab, |s| {
        counter(&tunnel(s)["inbound"]["drops"]["icv"]) > icv0
    });
    assert_eq!(counter(&tunnel(&s2)["inbound"]["drops"]["icv"]), icv0 + 1);
    // The forged sequence number must not have moved the window: fresh packets still pass.
    assert_pings(&lab, "after bad ICV");

    // 3. Garbage on UDP 4500: too short to be anything, a reserved SPI, and a truncated ESP
    //    packet of our own SPI.
    let sock0 = lab.status(Host::GwB).unwrap();
    let mal0 = counter(&sock0["socket"]["malformed"]);
    let samal0 = counter(&tunnel(&sock0)["inbound"]["drops"]["malformed"]);
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &[0x42, 0x17, 0x00])
        .unwrap();
    let mut reserved = vec![0u8; 64];
    reserved[3] = 7;
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &reserved)
        .unwrap();
    lab.send_udp(Host::Nat, addr::GWB_PUBLIC, 4500, &esp[..12])
        .unwrap();
    let s3 = wait_for(&lab, |s| {
        counter(&s["socket"]["malformed"]) >= mal0 + 2
            && counter(&tunnel(s)["inbound"]["drops"]["malformed"]) > samal0
    });
    assert_eq!(counter(&s3["socket"]["malformed"]), mal0 + 2, "{s3}");
    assert_eq!(
        counter(&tunnel(&s3)["inbound"]["drops"]["malformed"]),
        samal0 + 1
    );
    assert_pings(&lab, "after garbage");

    // The peer address did not follow any of the forged datagrams from the NAT's address.
    assert_eq!(
        tunnel(&lab.status(Host::GwB).unwrap())["peer"],
        format!("{}:4500", addr::GWA_PUBLIC)
    );
}

/// ESP in UDP reaches the worker its SPI names (SPI mod 2 with the lab's two workers): gwb's
/// inbound SPI 0x1001 -> worker 1, gwa's 0x2002 -> worker 0. Worker 0 also takes the NAT
/// keepalives (too short to carry an SPI). Without the steering the kernel's hash of the one
/// 4-tuple picks a worker at random per namespace, so each suite's fresh lab checks it again.
fn check_steering(lab: &Lab) {
    let per_worker = |s: &Value| -> Vec<u64> {
        let w = s["socket"]["per_worker"].as_array();
        w.unwrap_or_else(|| panic!("no per_worker: {s}"))
            .iter()
            .map(counter)
            .collect()
    };
    // Differences over a round of pings, so that datagrams of the daemons' first moments
    // (before every socket of the group was bound) do not count.
    let (a0, b0) = (
        lab.status(Host::GwA).unwrap(),
        lab.status(Host::GwB).unwrap(),
    );
    assert_pings(lab, "steering check");
    let esp = |s: &Value| counter(&tunnel(s)["inbound"]["packets"]);
    let keepalives = |s: &Value| counter(&s["socket"]["keepalives"]);
    let delta = |s: &Value, s0: &Value| -> Vec<u64> {
        per_worker(s)
            .iter()
            .zip(per_worker(s0))
            .map(|(x, y)| x - y)
            .collect()
    };
    // gwb: every ESP datagram of the round on worker 1; worker 0 got only keepalives.
    // Counters move a batch apart; settle within the bounded wait.
    let b = wait_for(lab, |s| {
        let d = delta(s, &b0);
        d.len() == 2
            && esp(s) > esp(&b0)
            && d[1] >= esp(s) - esp(&b0)
            && d[0] == keepalives(s) - keepalives(&b0)
    });
    assert_eq!(tunnel(&b)["inbound"]["worker"], 1, "gwb: {b}");
    // gwa: all on worker 0.
    let a = lab.status(Host::GwA).unwrap();
    let d = delta(&a, &a0);
    assert_eq!(tunnel(&a)["inbound"]["worker"], 0, "gwa: {a}");
    assert!(
        esp(&a) > esp(&a0) && d[0] >= esp(&a) - esp(&a0) && d[1] == 0,
        "gwa's ESP (SPI 0x2002) must all reach worker 0: before {a0}\nafter {a}"
    );
}

fn wait_for(lab: &Lab, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = lab.status(Host::GwB).unwrap();
        if ok(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not reached; last status: {last}");
}

macro_rules! suites {
    ($($test:ident: $suite:literal, $esn:literal;)*) => {
        $(
            #[test]
            fn $test() {
                check_suite($suite, $esn);
            }
        )*
    };
}

suites! {
    aes128gcm16: "aes128gcm16", false;
    aes128gcm16_esn: "aes128gcm16", true;
    aes192gcm16: "aes192gcm16", false;
    aes256gcm16: "aes256gcm16", false;
    chacha20poly1305: "chacha20poly1305", false;
    aes128_sha1: "aes128-sha1", false;
    aes192_sha1: "aes192-sha1", false;
    aes256_sha1: "aes256-sha1", false;
    aes128_sha256: "aes128-sha256", false;
    aes192_sha256: "aes192-sha256", false;
    aes256_sha256: "aes256-sha256", true;
    aes128_sha384: "aes128-sha384", false;
    aes256_sha384: "aes256-sha384", false;
    aes128_sha512: "aes128-sha512", false;
    aes256_sha512: "aes256-sha512", false;
}

/// A DF packet larger than the tunnel MTU is refused with ICMP fragmentation-needed naming the
/// tunnel MTU; a larger non-DF packet crosses, fragmented before encryption; TCP SYNs have their
/// MSS clamped.
#[test]
fn mtu_df_and_fragmentation() {
    let lab = lab("aes256gcm16", false);
    let st = lab.status(Host::GwA).unwrap();
    let mtu = counter(&tunnel(&st)["mtu"]);
    // 1500 underlay - 20 IP - 8 UDP - 8 ESP - 8 IV - 16 ICV - 2 trailer = 1438.
    assert_eq!(mtu, 1438);
    // MSS first, before any path MTU is learnt: lana offers 1460, the tunnel allows 1398;
    // the SYN and the SYN-ACK are clamped (gwa clamps the SYN, gwb the SYN-ACK).
    let clamped = |h| counter(&tunnel(&lab.status(h).unwrap())["tun"]["mss_clamped"]);
    let before = (clamped(Host::GwA), clamped(Host::GwB));
    let mut srv = lab.ns.exec(&lab.name(Host::LanB), "python3");
    srv.args([
        "-c",
        "import socket;s=socket.socket();s.bind(('10.2.0.2',5001));s.listen();s.settimeout(5);c,_=s.accept();c.close()",
    ]);
    let mut srv = srv.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let cli = lab
        .ns
        .exec(&lab.name(Host::LanA), "python3")
        .args([
            "-c",
            "import socket;s=socket.create_connection(('10.2.0.2',5001),timeout=5);s.close()",
        ])
        .status()
        .unwrap();
    assert!(cli.success(), "TCP connect through the tunnel");
    let _ = srv.wait();
    let after = (clamped(Host::GwA), clamped(Host::GwB));
    // gwa clamps lana's SYN on its way in, gwb lanb's SYN-ACK.
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "SYN and SYN-ACK clamped: {before:?} -> {after:?}"
    );
    let out = lab
        .ns
        .exec(&lab.name(Host::LanA), "ping")
        .args([
            "-n",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1450",
            addr::LANB,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Frag needed") && text.contains("mtu = 1438"),
        "DF ping over the MTU should get fragmentation-needed with mtu 1438: {text}"
    );
    assert_eq!(lab.ping(Host::LanA, addr::LANB, 3, 4000).unwrap(), 3);
    // IPv6: the first oversized packet draws a Packet Too Big from gwa, then the source
    // fragments; later echoes come back.
    let out = lab
        .ns
        .exec(&lab.name(Host::LanA), "ping")
        .args([
            "-n",
            "-c",
            "6",
            "-i",
            "0.3",
            "-W",
            "2",
            "-s",
            "1500",
            addr::LANB6,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bytes from fd02::2"),
        "IPv6 1500-byte ping after PTB: {text}\ngwa: {}\ngwb: {}",
        lab.status(Host::GwA).unwrap(),
        lab.status(Host::GwB).unwrap()
    );
}

/// Raw ESP (IP protocol 50), for paths without NAPT: traffic flows both ways over IPv4 and
/// IPv6, and nothing arrives on the UDP socket.
#[test]
fn raw_esp_transport() {
    let lab = lab_with("aes128gcm16", |o| o.raw_esp = true);
    assert_pings(&lab, "raw ESP");
    for host in [Host::GwA, Host::GwB] {
        let st = lab.status(host).unwrap();
        let t = tunnel(&st);
        assert_eq!(t["encap"], "esp", "{st}");
        assert!(counter(&t["inbound"]["packets"]) >= 6, "{st}");
        assert_eq!(counter(&t["inbound"]["drops"]["icv"]), 0);
        assert_eq!(
            counter(&t["tun"]["keepalives_sent"]),
            0,
            "no NAT keepalives over raw ESP"
        );
    }
    // gwb sees gwa's packets from its public (NAT) address, as protocol 50.
    let st = lab.status(Host::GwB).unwrap();
    assert_eq!(tunnel(&st)["peer"], format!("{}:4500", addr::GWA_PUBLIC));
}

/// With a device MTU larger than ESP fits (`mtu = 1500` over a 1500-byte underlay), the
/// workers enforce the real limit themselves: a DF packet gets ICMP fragmentation-needed with
/// the tunnel's MTU from the tunnel's far end, an IPv4 packet without DF is fragmented before
/// encryption, and IPv6 gets Packet Too Big.
#[test]
fn workers_enforce_the_esp_mtu() {
    let lab = lab_with("aes256gcm16", |o| o.device_mtu = Some(1500));
    let st = lab.status(Host::GwA).unwrap();
    assert_eq!(counter(&tunnel(&st)["mtu"]), 1500);
    assert_eq!(counter(&tunnel(&st)["max_inner"]), 1438);

    let ping = |args: &[&str]| {
        let out = lab
            .ns
            .exec(&lab.name(Host::LanA), "ping")
            .args(["-n", "-W", "2"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Without DF first: once lana has learnt the path MTU it fragments by itself.
    let text = ping(&[
        "-c",
        "3",
        "-i",
        "0.2",
        "-M",
        "dont",
        "-s",
        "1450",
        addr::LANB,
    ]);
    assert!(
        text.contains("3 received"),
        "non-DF 1478-byte packets cross: {text}"
    );
    let text = ping(&["-c", "1", "-M", "do", "-s", "1450", addr::LANB]);
    assert!(
        text.contains("From 169.254.10.2") && text.contains("mtu = 1438"),
        "fragmentation-needed from the tunnel's far end: {text}"
    );
    let text = ping(&["-c", "6", "-i", "0.3", "-s", "1450", addr::LANB6]);
    assert!(
        text.contains("Packet too big") && text.contains("bytes from fd02::2"),
        "IPv6 Packet Too Big, then fragments cross: {text}"
    );
    let t = tunnel(&lab.status(Host::GwA).unwrap()).clone();
    assert!(counter(&t["tun"]["icmp_too_big"]) >= 2, "{t}");
    assert!(counter(&t["tun"]["fragmented"]) >= 3, "{t}");
    // The peer fragmented the replies the same way.
    let t = tunnel(&lab.status(Host::GwB).unwrap()).clone();
    assert!(counter(&t["tun"]["fragmented"]) >= 3, "{t}");
}
