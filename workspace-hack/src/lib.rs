//! No code: this crate only enables dependency features (see its Cargo.toml).
