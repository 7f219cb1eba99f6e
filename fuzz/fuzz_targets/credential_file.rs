#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dregsy::fuzzing::credential_file(data));
