//! edge-cache
