//! rib (placeholder)
