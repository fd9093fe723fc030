//! fuzzing (placeholder)
