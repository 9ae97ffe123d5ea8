//! Figure-6-style panels as inline SVG: error (%) against epoch, training error dashed,
//! test error solid, one colour per depth (the same colour in every panel).

use crate::error::ReportError;
use plotters::prelude::*;

/// Tableau 10: distinct, colour-blind-friendly enough, and printable.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One depth's curves, averaged over its seeds: (epoch, error in %).
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub color: usize,
    pub train: Vec<(f64, f64)>,
    pub test: Vec<(f64, f64)>,
}

pub fn error_panel(
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    y_max: f64,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    draw(&mut svg, title, curves, max_epoch, y_max).map_err(|e| ReportError::Chart {
        chart: title.to_string(),
        detail: e.to_string(),
    })?;
    Ok(svg)
}

fn draw<'a>(
    svg: &'a mut String,
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    y_max: f64,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(svg, (560, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..max_epoch.max(2.0), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("error (%)")
        .x_labels(max_epoch.clamp(2.0, 12.0) as usize)
        .label_style(("sans-serif", 13))
        .draw()?;
    for curve in curves {
        let color = PALETTE[curve.color % PALETTE.len()];
        chart
            .draw_series(DashedLineSeries::new(
                curve.train.iter().copied(),
                6,
                4,
                color.stroke_width(2),
            ))?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(LineSeries::new(
            curve.test.iter().copied(),
            color.stroke_width(3),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_one_path_per_line() {
        let curves = vec![
            Curve {
                label: "depth 4".into(),
                color: 0,
                train: vec![(1.0, 20.0), (2.0, 10.0)],
                test: vec![(1.0, 22.0), (2.0, 12.0)],
            },
            Curve {
                label: "depth 64".into(),
                color: 1,
                train: vec![(1.0, 80.0), (2.0, 70.0)],
                test: vec![(1.0, 81.0), (2.0, 72.0)],
            },
        ];
        let svg = error_panel("plain", &curves, 2.0, 100.0).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("depth 64") && svg.contains("error (%)"));
        // Each curve's test line is a polyline in its colour.
        assert!(
            svg.contains("#1F77B4") || svg.contains("#1f77b4"),
            "palette colour missing"
        );
    }
}
