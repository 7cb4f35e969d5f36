//! api

pub mod console;
