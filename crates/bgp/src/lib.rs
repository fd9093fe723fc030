//! bh-bgp: a sans-IO BGP-4 speaker (RFC 4271) for bridgehead.
//!
//! What it does:
//! - [`wire`]: decode and encode every BGP message (OPEN with capabilities, UPDATE with the path
//!   attributes clouds use, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH); decode errors carry the
//!   NOTIFICATION code/subcode/data and, for UPDATE attributes, their RFC 7606 action.
//! - [`session`]: the RFC 4271 §8 finite state machine for one TCP connection, driven by the shell
//!   (TCP connected/closed, bytes in, timeouts) and returning bytes to send, timer deadlines and
//!   events.
//! - [`rib`]: Adj-RIB-In, the Loc-RIB decision process (§9.1) with ECMP, and export policy.
//! - [`speaker`]: the object the shell drives: neighbors, collision detection (§6.8), graceful
//!   restart helper, and `BestRoutesChanged` events for the FIB.
//!
//! What it does NOT do: open sockets, read the clock or the OS random source (time is passed in as
//! an [`Instant`], jitter comes from a seed the shell injects), TCP MD5 (a socket option the shell
//! sets), or talk to the kernel. Not implemented: ADD-PATH, extended messages (RFC 8654), extended
//! optional parameters (RFC 9072), route reflection, confederations.

pub mod fuzzing;
pub mod rib;
pub mod session;
pub mod speaker;
mod types;
pub mod wire;

pub use types::{Afi, Family, Instant, Prefix, PrefixError, Safi};
