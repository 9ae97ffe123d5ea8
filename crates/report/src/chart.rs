//! The report's figures as inline SVG (plotters):
//! - Figure-6-style panels: error (%) against epoch, training error dashed, test error
//!   solid, one colour per depth (the same colour in every panel);
//! - error against depth: final training and test error, plain vs residual, with a
//!   mean ± std band over seeds.

use crate::error::ReportError;
use crate::numbers;
use plotters::coord::types::RangedCoordf64;
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

const SIZE: (u32, u32) = (560, 380);

/// The error axis: linear or log10, over `[lo, hi]` percent. A log axis is drawn as a
/// linear axis over log10 values with labels mapped back, so both share one code path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorAxis {
    pub log: bool,
    pub lo: f64,
    pub hi: f64,
}

impl ErrorAxis {
    fn map(&self, percent: f64) -> f64 {
        if self.log {
            percent.max(self.lo).log10()
        } else {
            percent
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.map(self.lo)..self.map(self.hi)
    }

    fn label(&self, v: f64) -> String {
        match self.log {
            true => numbers::significant(10f64.powf(v), 2),
            false => numbers::significant(v, 3),
        }
    }

    fn description(&self) -> &'static str {
        if self.log {
            "error (%, log scale)"
        } else {
            "error (%)"
        }
    }
}

/// One depth's curves: (epoch, error in %).
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub color: usize,
    pub train: Vec<(f64, f64)>,
    pub test: Vec<(f64, f64)>,
}

/// One family's final errors against depth: (depth, mean %, std %).
#[derive(Debug, Clone)]
pub struct DepthSeries {
    pub family: String,
    pub color: usize,
    pub train: Vec<(f64, f64, f64)>,
    pub test: Vec<(f64, f64, f64)>,
}

/// Epochs and depths are integers: label whole ticks only (no "4 4 5" from 4.0, 4.5, 5.0).
fn whole_number_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

type SvgChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white canvas with the title and the label areas every figure shares. Errors are
/// flattened to text here: plotters' error types borrow the backend.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    axis: ErrorAxis,
) -> Result<SvgChart<'a, 'b>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(x, axis.range())
        .map_err(|e| e.to_string())
}

fn legend<'a, 'b: 'a>(
    chart: &mut SvgChart<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

type DrawResult<'a> = Result<(), Box<dyn std::error::Error + 'a>>;

fn chart_error(title: &str) -> impl Fn(Box<dyn std::error::Error + '_>) -> ReportError + '_ {
    move |e| ReportError::Chart {
        chart: title.to_string(),
        detail: e.to_string(),
    }
}

pub fn error_panel(
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    axis: ErrorAxis,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    draw_panel(&mut svg, title, curves, max_epoch, axis).map_err(chart_error(title))?;
    Ok(svg)
}

fn draw_panel<'a>(
    svg: &'a mut String,
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    axis: ErrorAxis,
) -> DrawResult<'a> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let mut chart = frame(&root, title, 1f64..max_epoch.max(2.0), axis)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(axis.description())
        .x_labels(max_epoch.clamp(2.0, 12.0) as usize)
        .x_label_formatter(&whole_number_label)
        .y_label_formatter(&|y| axis.label(*y))
        .label_style(("sans-serif", 13))
        .draw()?;
    let map = |points: &[(f64, f64)]| {
        points
            .iter()
            .map(|&(x, y)| (x, axis.map(y)))
            .collect::<Vec<_>>()
    };
    for curve in curves {
        let color = PALETTE[curve.color % PALETTE.len()];
        chart
            .draw_series(DashedLineSeries::new(
                map(&curve.train),
                6,
                4,
                color.stroke_width(2),
            ))?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(LineSeries::new(map(&curve.test), color.stroke_width(3)))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

pub fn depth_chart(
    series: &[DepthSeries],
    depths: (f64, f64),
    axis: ErrorAxis,
) -> Result<String, ReportError> {
    let title = "final error against depth";
    let mut svg = String::new();
    draw_depth(&mut svg, title, series, depths, axis).map_err(chart_error(title))?;
    Ok(svg)
}

fn draw_depth<'a>(
    svg: &'a mut String,
    title: &str,
    series: &[DepthSeries],
    depths: (f64, f64),
    axis: ErrorAxis,
) -> DrawResult<'a> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let pad = ((depths.1 - depths.0) * 0.05).max(1.0);
    let mut chart = frame(&root, title, (depths.0 - pad)..(depths.1 + pad), axis)?;
    chart
        .configure_mesh()
        .x_desc("depth (weighted layers)")
        .y_desc(axis.description())
        .x_label_formatter(&whole_number_label)
        .y_label_formatter(&|y| axis.label(*y))
        .label_style(("sans-serif", 13))
        .draw()?;
    for s in series {
        let color = PALETTE[s.color % PALETTE.len()];
        for (points, dashed) in [(&s.train, true), (&s.test, false)] {
            if points.is_empty() {
                continue;
            }
            // Band: mean - std along the depths, then mean + std back.
            if points.iter().any(|p| p.2 > 0.0) {
                let mut band: Vec<(f64, f64)> = points
                    .iter()
                    .map(|&(d, m, sd)| (d, axis.map(m - sd)))
                    .collect();
                band.extend(points.iter().rev().map(|&(d, m, sd)| (d, axis.map(m + sd))));
                chart.draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.15).filled(),
                )))?;
            }
            let line: Vec<(f64, f64)> = points.iter().map(|&(d, m, _)| (d, axis.map(m))).collect();
            let kind = if dashed { "train" } else { "test" };
            let label = format!("{} {kind}", s.family);
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(
                        line.clone(),
                        6,
                        4,
                        color.stroke_width(2),
                    ))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
            }
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// One line of a diagnostics chart: (x, y) points against layer or block index.
#[derive(Debug, Clone)]
pub struct LayerSeries {
    pub label: String,
    pub color: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A chart of values against layer (or block) index; `log_y` for quantities that span
/// orders of magnitude (gradient norms).
pub fn layer_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_y: bool,
    series: &[LayerSeries],
) -> Result<String, ReportError> {
    let mut svg = String::new();
    draw_layers(&mut svg, title, x_desc, y_desc, log_y, series).map_err(chart_error(title))?;
    Ok(svg)
}

fn draw_layers<'a>(
    svg: &'a mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_y: bool,
    series: &[LayerSeries],
) -> DrawResult<'a> {
    let map = |y: f64| if log_y { y.max(1e-12).log10() } else { y };
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| !log_y || p.1 > 0.0)
    };
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let x_min = all().map(|p| p.0).fold(x_max, f64::min).min(x_max - 1.0);
    let (lo, hi) = all()
        .map(|p| map(p.1))
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(if log_y { 0.1 } else { 1e-3 });
    let y_range = if log_y {
        (lo - pad)..(hi + pad)
    } else {
        (lo - pad).min(0.0)..(hi + pad)
    };
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, y_range.clone())?;
    let span = y_range.end - y_range.start;
    let y_label = |y: &f64| match log_y {
        true => numbers::log_tick(*y, span),
        false => numbers::significant(*y, 3),
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&whole_number_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 13))
        .draw()?;
    for s in series {
        let color = PALETTE[s.color % PALETTE.len()];
        // A log axis cannot show zeros (a zero-initialised block's gradient at first).
        let line: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| !log_y || p.1 > 0.0)
            .map(|&(x, y)| (x, map(y)))
            .collect();
        let width = if s.dashed { 2 } else { 3 };
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(line, 6, 4, color.stroke_width(width)))?
        } else {
            chart.draw_series(LineSeries::new(line, color.stroke_width(width)))?
        };
        drawn.label(s.label.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
        });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINEAR: ErrorAxis = ErrorAxis {
        log: false,
        lo: 0.0,
        hi: 100.0,
    };

    fn curves() -> Vec<Curve> {
        vec![
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
        ]
    }

    #[test]
    fn panel_is_an_svg_with_labels_and_palette_colours() {
        let svg = error_panel("plain", &curves(), 2.0, LINEAR).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("depth 64") && svg.contains("error (%)"));
        assert!(
            svg.to_lowercase().contains("#1f77b4"),
            "palette colour missing"
        );
    }

    #[test]
    fn log_axis_maps_values_and_labels_back() {
        let axis = ErrorAxis {
            log: true,
            lo: 1.0,
            hi: 100.0,
        };
        assert_eq!(axis.map(10.0), 1.0);
        assert_eq!(axis.label(1.0), "10");
        assert_eq!(
            axis.map(0.0),
            0.0,
            "values below the axis are clamped to it"
        );
        let svg = error_panel("plain", &curves(), 2.0, axis).unwrap();
        assert!(svg.contains("log scale"));
    }

    #[test]
    fn layer_chart_draws_every_series_on_a_log_axis() {
        let series = vec![
            LayerSeries {
                label: "plain-8".into(),
                color: 0,
                dashed: false,
                points: vec![(1.0, 1e-4), (8.0, 1.0)],
            },
            LayerSeries {
                label: "residual-8".into(),
                color: 0,
                dashed: true,
                points: vec![(1.0, 0.1), (8.0, 0.5)],
            },
        ];
        let svg = layer_chart("gradients", "layer", "norm", true, &series).unwrap();
        assert!(svg.contains("plain-8") && svg.contains("residual-8"));
        // Decades as powers of ten (10⁻⁴ to 1), not "1e-4.0".
        assert!(svg.contains("10⁻²") && !svg.contains("1e"), "{svg}");
        assert!(layer_chart("empty", "layer", "x", false, &[]).is_ok());
    }

    /// Ticks with a few significant digits and thousands separated: the responses of a
    /// deep plain net reach about 1,400, and were labelled "1400.000", with "0.000" at
    /// the bottom.
    #[test]
    fn linear_ticks_are_written_for_readers() {
        let series = [LayerSeries {
            label: "plain-64".into(),
            color: 0,
            dashed: false,
            points: vec![(1.0, 0.0), (32.0, 700.0), (64.0, 1400.0)],
        }];
        let svg = layer_chart("responses", "layer", "std", false, &series).unwrap();
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .collect();
        assert!(labels.iter().any(|l| l.contains(",")), "{labels:?}");
        assert!(
            labels
                .iter()
                .all(|l| !l.ends_with(".000") && !l.contains("1e")),
            "{labels:?}"
        );
    }

    #[test]
    fn depth_chart_draws_bands_only_with_spread() {
        let series = |sd| DepthSeries {
            family: "plain".into(),
            color: 3,
            train: vec![(4.0, 9.0, sd), (64.0, 79.0, sd)],
            test: vec![(4.0, 11.0, sd), (64.0, 81.0, sd)],
        };
        let with = depth_chart(&[series(1.0)], (4.0, 64.0), LINEAR).unwrap();
        let without = depth_chart(&[series(0.0)], (4.0, 64.0), LINEAR).unwrap();
        assert!(with.matches("<polygon").count() >= 2, "bands expected");
        assert_eq!(without.matches("<polygon").count(), 0);
        assert!(with.contains("plain train") && with.contains("plain test"));
    }
}
