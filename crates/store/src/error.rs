//! Storage errors. The type lives in `tessera-core` (see its docs); storage
//! code names it through this crate.

pub use tessera_core::storage::StoreError;
