#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dregsy::fuzzing::www_authenticate(data));
