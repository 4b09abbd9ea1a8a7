//! Any text as a config file: parsing and validation either succeed or return an error;
//! they never panic, and what they accept is a desk that can start.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use servicedesk::config::{parse_file, Config, Overrides};

fuzz_target!(|text: &str| {
    let Ok(file) = parse_file(text, Path::new("fuzz.toml")) else {
        return;
    };
    if let Ok(config) = Config::resolve(file, Overrides::default()) {
        assert!(!config.tiers.is_empty());
        assert!(config
            .tiers
            .iter()
            .all(|t| (0.0..=1.0).contains(&t.threshold)));
    }
});
