//! Any bytes given to the CIFAR-10 record decoder: an error, or whole records whose
//! labels are in 0..10 and whose pixels fill exactly 3x32x32 per image, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(set) = data::decode_cifar(bytes, std::path::Path::new("fuzz.bin")) {
        assert_eq!(set.len * data::CIFAR_RECORD_BYTES, bytes.len());
        assert_eq!(set.images.len(), set.len * 3 * 32 * 32);
        assert!(set.labels.iter().all(|&l| l < 10));
    }
});
