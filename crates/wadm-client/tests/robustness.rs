//! Property tests: nothing a server (or a file) sends can make the client panic.

use proptest::prelude::*;
use wadm_client::manifest;

proptest! {
    #[test]
    fn manifest_inspection_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = manifest::inspect(&bytes);
    }

    #[test]
    fn manifest_inspection_of_yaml_like_text_never_panics(text in "[a-z:{}\\[\\] \n\"'-]{0,200}") {
        let _ = manifest::inspect(text.as_bytes());
    }

    #[test]
    fn found_names_round_trip(name in "[a-zA-Z0-9_-]{1,30}", version in "[a-z0-9.]{1,10}") {
        let yaml = format!("metadata:\n  name: \"{name}\"\n  annotations:\n    version: \"{version}\"\n");
        let info = manifest::inspect(yaml.as_bytes()).unwrap();
        prop_assert_eq!(info.name, name);
        prop_assert_eq!(info.version, Some(version));
    }
}
