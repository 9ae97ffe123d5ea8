//! Any bytes, gzipped or not, given to the IDX decoder: an error or an array whose data
//! length matches its dimensions, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(array) = data::decode_idx(bytes.to_vec(), std::path::Path::new("fuzz.idx")) {
        assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
    }
});
