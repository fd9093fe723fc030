//! [`PacketBuf`]: one packet in an owned buffer with headroom and tailroom, so that ESP can be
//! added and removed in place.
//!
//! The buffer is allocated once, when it is built; nothing here allocates afterwards. The
//! dataplane keeps a pool of them per worker and reuses them for every batch.

/// Octets kept free in front of a packet read into the buffer: room for the ESP header
/// (8 octets) and the largest IV (16 octets), rounded up.
pub const HEADROOM: usize = 64;

/// Octets kept after the largest packet the buffer was sized for: room for padding to a
/// 16-octet block (up to 15), pad length and next header (2) and the largest ICV (32) when
/// sealing; and, when receiving, room for the whole ESP overhead of the largest suite
/// (8 + 16 + 15 + 2 + 32 = 73 octets, AES-CBC with HMAC-SHA-512), so that a datagram carrying
/// an inner packet of the buffer's `max_packet` fits in what
/// [`reset_for_read`](PacketBuf::reset_for_read) returns. Rounded up.
pub const TAILROOM: usize = 80;

/// The requested change does not fit the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("packet buffer has no room for that")]
pub struct NoRoom;

/// An owned packet buffer: the packet is `buf[start..end]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PacketBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Packet contents are traffic: print only the geometry.
        f.debug_struct("PacketBuf")
            .field("capacity", &self.buf.len())
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

impl PacketBuf {
    /// A buffer for packets of up to `max_packet` octets (the largest inner packet, or the
    /// largest datagram to receive), with [`HEADROOM`] before and [`TAILROOM`] after.
    pub fn new(max_packet: usize) -> Self {
        let cap = HEADROOM.saturating_add(max_packet).saturating_add(TAILROOM);
        Self {
            buf: vec![0u8; cap].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
        }
    }

    /// A buffer holding a copy of `packet`, sized for it (tests and tools; allocates).
    pub fn from_slice(packet: &[u8]) -> Self {
        let mut b = Self::new(packet.len());
        // Sized for it above, so it fits.
        let _ = b.load(packet);
        b
    }

    /// The packet.
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// The packet, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or_default()
    }

    /// Length of the packet.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Total size of the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Free octets in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free octets after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Empties the buffer with the packet start at [`HEADROOM`] and returns everything past
    /// the headroom to receive a packet into; then call [`set_len`](Self::set_len).
    ///
    /// To leave room for ESP's trailer when sealing, read at most the `max_packet` the buffer
    /// was built for.
    pub fn reset_for_read(&mut self) -> &mut [u8] {
        self.start = HEADROOM.min(self.buf.len());
        self.end = self.start;
        let start = self.start;
        self.buf.get_mut(start..).unwrap_or_default()
    }

    /// Sets the packet length, keeping its start.
    pub fn set_len(&mut self, len: usize) -> Result<(), NoRoom> {
        match self.start.checked_add(len) {
            Some(end) if end <= self.buf.len() => {
                self.end = end;
                Ok(())
            }
            _ => Err(NoRoom),
        }
    }

    /// Copies `packet` in at [`HEADROOM`].
    pub fn load(&mut self, packet: &[u8]) -> Result<(), NoRoom> {
        let room = self.reset_for_read();
        room.get_mut(..packet.len())
            .ok_or(NoRoom)?
            .copy_from_slice(packet);
        self.set_len(packet.len())
    }

    /// Grows the packet by `n` octets at the front and returns them.
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        let start = self.start.checked_sub(n).ok_or(NoRoom)?;
        self.start = start;
        self.buf.get_mut(start..start + n).ok_or(NoRoom)
    }

    /// Grows the packet by `n` octets at the back and returns them.
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        let end = self.end.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(NoRoom)?;
        let old = self.end;
        self.end = end;
        self.buf.get_mut(old..end).ok_or(NoRoom)
    }

    /// Removes `n` octets from the front of the packet.
    pub fn trim_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom);
        }
        self.start += n;
        Ok(())
    }

    /// Removes `n` octets from the back of the packet.
    pub fn trim_back(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len() {
            return Err(NoRoom);
        }
        self.end -= n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_prepend_append_trim() {
        let mut b = PacketBuf::new(100);
        assert_eq!(b.capacity(), HEADROOM + 100 + TAILROOM);
        let room = b.reset_for_read();
        assert_eq!(room.len(), 100 + TAILROOM);
        room[..3].copy_from_slice(&[1, 2, 3]);
        b.set_len(3).unwrap();
        assert_eq!(b.data(), &[1, 2, 3]);
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        b.append(1).unwrap()[0] = 7;
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 7]);
        assert_eq!(b.headroom(), HEADROOM - 2);
        b.trim_front(3).unwrap();
        b.trim_back(1).unwrap();
        assert_eq!(b.data(), &[2, 3]);
        b.data_mut()[0] = 5;
        assert_eq!(b.data(), &[5, 3]);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut b = PacketBuf::from_slice(&[1, 2, 3, 4]);
        assert_eq!(b.prepend(HEADROOM + 1), Err(NoRoom));
        assert_eq!(b.append(TAILROOM + 1), Err(NoRoom));
        assert_eq!(b.trim_front(5), Err(NoRoom));
        assert_eq!(b.trim_back(5), Err(NoRoom));
        assert_eq!(b.set_len(usize::MAX), Err(NoRoom));
        assert_eq!(b.set_len(4 + TAILROOM + 1), Err(NoRoom));
        // Nothing changed on refusal.
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        let mut small = PacketBuf::new(2);
        assert_eq!(small.load(&[0; 2 + TAILROOM + 1]), Err(NoRoom));
        assert!(small.is_empty());
    }
}
