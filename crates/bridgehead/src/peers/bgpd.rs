//! BIRD 2, FRR bgpd and GoBGP as BGP peers in a namespace.
