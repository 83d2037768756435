//! libFuzzer entry point of `smp_fuzz::serial_targets::serial_deframer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smp_fuzz::serial_targets::serial_deframer(data));
