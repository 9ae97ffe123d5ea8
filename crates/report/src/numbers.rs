//! Numbers as a reader wants them: a few significant digits, thousands separated, and
//! powers of ten written as powers of ten. Every number the report prints outside the
//! tables of errors goes through here, so that no chart says `1400.000` or `1e5.0` and
//! no sentence says `80008.447`.

/// `v` to `digits` significant digits (at least one), whole numbers kept whole, a comma
/// between thousands, no trailing zeros after the point: 1400 -> "1,400", 80008.447 ->
/// "80,008", 0.012345 -> "0.0123", 2.50 -> "2.5", 0 -> "0".
pub fn significant(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = digits.max(1) as i32;
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{v:.decimals$}");
    let text = match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    };
    group_thousands(&text)
}

/// Commas between the thousands of the whole part of a formatted number.
fn group_thousands(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = match rest.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (rest, None),
    };
    if whole.len() <= 3 {
        return text.to_string();
    }
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// 10 to the whole power `exponent`, written as such: "10⁻³", "0.1" is "10⁻¹", "1", "10",
/// "10²".
pub fn power_of_ten(exponent: i32) -> String {
    match exponent {
        0 => "1".into(),
        1 => "10".into(),
        e => format!("10{}", superscript(e)),
    }
}

/// `v` as a mantissa of `digits` significant digits times a power of ten, for values
/// far from 1 ("3.21 × 10⁻⁵"); values from 0.01 to 10,000 as `significant` writes them.
pub fn scientific(v: f64, digits: usize) -> String {
    if !v.is_finite() || v == 0.0 {
        return significant(v, digits);
    }
    let exponent = v.abs().log10().floor() as i32;
    if (-2..=4).contains(&exponent) {
        return significant(v, digits);
    }
    let mantissa = v / 10f64.powi(exponent);
    // Rounding can carry the mantissa to 10 (9.999 -> "10"): write it as the next power.
    let text = significant(mantissa, digits);
    match text.trim_start_matches('-') == "10" {
        true => {
            let sign = if v < 0.0 { "-" } else { "" };
            format!("{sign}{}", power_of_ten(exponent + 1))
        }
        false => format!("{text} × {}", power_of_ten(exponent)),
    }
}

fn superscript(e: i32) -> String {
    e.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

/// The label of a tick at `position` on a log10 axis spanning `span` decades: whole
/// powers of ten only where the axis spans at least one decade (other ticks stay
/// unlabelled), the values themselves where it spans less.
pub fn log_tick(position: f64, span: f64) -> String {
    if span < 1.0 {
        return significant(10f64.powf(position), 2);
    }
    let whole = position.round();
    match (position - whole).abs() < 1e-6 {
        true => power_of_ten(whole as i32),
        false => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits_thousands_and_no_trailing_zeros() {
        for (v, digits, want) in [
            (0.0, 3, "0"),
            (1400.0, 3, "1,400"),
            (80008.447, 3, "80,008"),
            (1234567.0, 2, "1,234,567"),
            (0.012345, 3, "0.0123"),
            (2.5, 3, "2.5"),
            (2.0, 3, "2"),
            (-1234.6, 3, "-1,235"),
            (99.96, 3, "100"),
            (0.1234, 1, "0.1"),
            (12.5, 3, "12.5"),
        ] {
            assert_eq!(significant(v, digits), want, "{v} to {digits}");
        }
        assert_eq!(significant(f64::NAN, 3), "NaN");
    }

    #[test]
    fn powers_of_ten_are_written_as_powers() {
        assert_eq!(power_of_ten(-3), "10⁻³");
        assert_eq!(power_of_ten(0), "1");
        assert_eq!(power_of_ten(1), "10");
        assert_eq!(power_of_ten(5), "10⁵");
        assert_eq!(power_of_ten(-12), "10⁻¹²");
        assert_eq!(scientific(3.2149e-5, 3), "3.21 × 10⁻⁵");
        assert_eq!(scientific(9.9999e-7, 3), "10⁻⁶");
        assert_eq!(scientific(-4.5e8, 2), "-4.5 × 10⁸");
        assert_eq!(scientific(0.5, 3), "0.5");
        assert_eq!(scientific(1400.0, 3), "1,400");
    }

    #[test]
    fn log_ticks_label_whole_decades_or_values_on_a_short_axis() {
        assert_eq!(log_tick(2.0, 4.0), "10²");
        assert_eq!(log_tick(-1.0, 4.0), "10⁻¹");
        assert_eq!(log_tick(2.5, 4.0), "");
        assert_eq!(log_tick(0.5, 0.6), "3.2");
        assert_eq!(log_tick(1.0, 0.6), "10");
    }
}
