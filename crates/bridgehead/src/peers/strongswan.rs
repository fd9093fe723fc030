//! strongSwan charon (kernel-libipsec) as an IKEv2 peer in a namespace.
