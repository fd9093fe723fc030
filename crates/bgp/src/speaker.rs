//! speaker (placeholder)
