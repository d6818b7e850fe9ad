//! fasttrack
