//! Where training runs: the CPU, or a CUDA GPU (with the `cuda` build feature).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    #[default]
    Cpu,
    /// The GPU with this ordinal.
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a device: use cpu, cuda or cuda:N (N = 0, 1, ...)");
        match s {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(ComputeDevice::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, device) in [
            ("cpu", ComputeDevice::Cpu),
            ("cuda", ComputeDevice::Cuda(0)),
            ("cuda:1", ComputeDevice::Cuda(1)),
        ] {
            assert_eq!(text.parse::<ComputeDevice>().unwrap(), device);
        }
        assert_eq!(
            ComputeDevice::Cuda(2).to_string().parse(),
            Ok(ComputeDevice::Cuda(2))
        );
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            assert!(bad
                .parse::<ComputeDevice>()
                .unwrap_err()
                .contains("cpu, cuda"));
        }
    }
}
