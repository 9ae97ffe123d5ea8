//! The report's figures as inline SVG (plotters):
//! - Figure-6-style panels: error (%) against epoch, training error dashed, test error
//!   solid, one colour per depth (the same colour in every panel);
//! - error against depth: final training and test error, plain vs residual, with a
//!   mean ± std band over seeds;
//! - values against layer or block index (the diagnostics).
//!
//! Each returns a [`Figure`]: the SVG and the data the page's script redraws it from.

use crate::error::ReportError;
use crate::figure::{Figure, FigureData, SeedCurve, SeriesData};
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

fn hex(color: usize) -> String {
    let RGBColor(r, g, b) = PALETTE[color % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn xy(points: &[(f64, f64)]) -> Vec<[f64; 2]> {
    points.iter().map(|&(x, y)| [x, y]).collect()
}

/// Exponential moving average with TensorBoard's bias correction: the first values are
/// not pulled towards zero. `weight` 0 returns the values unchanged. (The page's script
/// has the same function for its slider.)
pub(crate) fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let mut ema = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            ema = weight * ema + (1.0 - weight) * v;
            ema / (1.0 - weight.powi(i as i32 + 1))
        })
        .collect()
}

fn smoothed(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    points
        .iter()
        .map(|p| p.0)
        .zip(smooth(&ys, weight))
        .collect()
}

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

/// One depth's curves: (epoch, error in %), means over seeds, unsmoothed.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub color: usize,
    pub train: Vec<(f64, f64)>,
    pub test: Vec<(f64, f64)>,
    /// Optimiser steps done at each epoch, where the files say.
    pub iterations: Vec<Option<u64>>,
    /// The seeds the curves are the mean of.
    pub seeds: Vec<SeedRun>,
}

/// One seed's curves of a depth.
#[derive(Debug, Clone)]
pub struct SeedRun {
    pub label: String,
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

/// A Figure-6 panel; the SVG draws the curves smoothed with `smoothing` (the data
/// keeps them raw, with the weight).
pub fn error_panel(
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    axis: ErrorAxis,
    smoothing: f64,
) -> Result<Figure, ReportError> {
    let mut svg = String::new();
    draw_panel(&mut svg, title, curves, max_epoch, axis, smoothing).map_err(chart_error(title))?;
    let series = curves
        .iter()
        .flat_map(|c| {
            [(true, &c.train), (false, &c.test)].map(|(train, points)| SeriesData {
                group: c.label.clone(),
                kind: if train { "train error" } else { "test error" }.into(),
                color: hex(c.color),
                dashed: train,
                markers: false,
                points: xy(points),
                sd: Vec::new(),
                iterations: c.iterations.clone(),
                seeds: c
                    .seeds
                    .iter()
                    .map(|s| SeedCurve {
                        label: s.label.clone(),
                        points: xy(if train { &s.train } else { &s.test }),
                    })
                    .collect(),
                n: c.seeds.len().max(1),
            })
        })
        .collect();
    Ok(Figure {
        svg,
        data: FigureData {
            title: title.into(),
            x_label: "epoch".into(),
            x_name: "epoch".into(),
            y_label: "error (%)".into(),
            y_unit: "%".into(),
            log_y: axis.log,
            smoothing: Some(smoothing),
            series,
        },
    })
}

fn draw_panel<'a>(
    svg: &'a mut String,
    title: &str,
    curves: &[Curve],
    max_epoch: f64,
    axis: ErrorAxis,
    smoothing: f64,
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
        smoothed(points, smoothing)
            .into_iter()
            .map(|(x, y)| (x, axis.map(y)))
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
) -> Result<Figure, ReportError> {
    let title = "final error against depth";
    let mut svg = String::new();
    draw_depth(&mut svg, title, series, depths, axis).map_err(chart_error(title))?;
    let lines = series
        .iter()
        .flat_map(|s| {
            [(true, &s.train), (false, &s.test)].map(|(train, points)| SeriesData {
                group: s.family.clone(),
                kind: if train { "train error" } else { "test error" }.into(),
                color: hex(s.color),
                dashed: train,
                markers: true,
                points: points.iter().map(|&(d, m, _)| [d, m]).collect(),
                sd: points.iter().map(|p| p.2).collect(),
                iterations: Vec::new(),
                seeds: Vec::new(),
                n: 1,
            })
        })
        .filter(|line| !line.points.is_empty())
        .collect();
    Ok(Figure {
        svg,
        data: FigureData {
            title: title.into(),
            x_label: "depth (weighted layers)".into(),
            x_name: "depth".into(),
            y_label: "error (%)".into(),
            y_unit: "%".into(),
            log_y: axis.log,
            smoothing: None,
            series: lines,
        },
    })
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
/// orders of magnitude (gradient norms). `y_desc` names the quantity; the SVG adds
/// "(log scale)" to it on a log axis.
pub fn layer_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_y: bool,
    series: &[LayerSeries],
) -> Result<Figure, ReportError> {
    let mut svg = String::new();
    let axis_desc = match log_y {
        true => format!("{y_desc} (log scale)"),
        false => y_desc.to_string(),
    };
    draw_layers(&mut svg, title, x_desc, &axis_desc, log_y, series).map_err(chart_error(title))?;
    let lines = series
        .iter()
        .map(|s| SeriesData {
            group: s.label.clone(),
            kind: String::new(),
            color: hex(s.color),
            dashed: s.dashed,
            markers: false,
            points: xy(&s.points),
            sd: Vec::new(),
            iterations: Vec::new(),
            seeds: Vec::new(),
            n: 1,
        })
        .collect();
    Ok(Figure {
        svg,
        data: FigureData {
            title: title.into(),
            x_label: x_desc.into(),
            // "weighted layer" -> "layer": what one tick is called in a tooltip.
            x_name: x_desc.rsplit(' ').next().unwrap_or(x_desc).into(),
            y_label: y_desc.into(),
            y_unit: String::new(),
            log_y,
            smoothing: None,
            series: lines,
        },
    })
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
                iterations: vec![Some(5), Some(10)],
                seeds: vec![SeedRun {
                    label: "seed 0".into(),
                    train: vec![(1.0, 20.0), (2.0, 10.0)],
                    test: vec![(1.0, 22.0), (2.0, 12.0)],
                }],
            },
            Curve {
                label: "depth 64".into(),
                color: 1,
                train: vec![(1.0, 80.0), (2.0, 70.0)],
                test: vec![(1.0, 81.0), (2.0, 72.0)],
                iterations: Vec::new(),
                seeds: Vec::new(),
            },
        ]
    }

    #[test]
    fn panel_is_an_svg_with_labels_and_palette_colours() {
        let svg = error_panel("plain", &curves(), 2.0, LINEAR, 0.0)
            .unwrap()
            .svg;
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
        let svg = error_panel("plain", &curves(), 2.0, axis, 0.0).unwrap().svg;
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
        let svg = layer_chart("gradients", "layer", "norm", true, &series)
            .unwrap()
            .svg;
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
        let svg = layer_chart("responses", "layer", "std", false, &series)
            .unwrap()
            .svg;
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
        let with = depth_chart(&[series(1.0)], (4.0, 64.0), LINEAR)
            .unwrap()
            .svg;
        let without = depth_chart(&[series(0.0)], (4.0, 64.0), LINEAR)
            .unwrap()
            .svg;
        assert!(with.matches("<polygon").count() >= 2, "bands expected");
        assert_eq!(without.matches("<polygon").count(), 0);
        assert!(with.contains("plain train") && with.contains("plain test"));
    }
    #[test]
    fn smoothing_is_bias_corrected_and_zero_weight_is_identity() {
        let v = [10.0, 20.0, 30.0];
        assert_eq!(smooth(&v, 0.0), v.to_vec());
        let s = smooth(&[5.0, 5.0, 5.0], 0.9);
        assert!(s.iter().all(|x| (x - 5.0).abs() < 1e-9), "{s:?}");
        let s = smooth(&v, 0.5);
        assert_eq!(s[0], 10.0);
        assert!(s[2] < 30.0 && s[2] > s[1]);
    }

    /// The data beside a panel holds the raw means (the SVG draws them smoothed), each
    /// depth's training and test line under one legend group, its seeds and iterations.
    #[test]
    fn panel_data_keeps_raw_values_seeds_and_groups() {
        let figure = error_panel("plain", &curves(), 2.0, LINEAR, 0.6).unwrap();
        let data = &figure.data;
        assert_eq!(data.smoothing, Some(0.6));
        assert_eq!(data.series.len(), 4);
        let train = &data.series[0];
        assert_eq!(
            (train.group.as_str(), train.kind.as_str()),
            ("depth 4", "train error")
        );
        assert!(train.dashed && !data.series[1].dashed);
        assert_eq!(train.points, vec![[1.0, 20.0], [2.0, 10.0]], "unsmoothed");
        assert_eq!(train.iterations, vec![Some(5), Some(10)]);
        assert_eq!(train.seeds[0].label, "seed 0");
        assert_eq!(
            data.series[1].seeds[0].points,
            vec![[1.0, 22.0], [2.0, 12.0]]
        );
        assert_eq!(train.color, "#1f77b4");
        // The SVG's second training point is the smoothed one: 0.6 * 20 + 0.4 * 10,
        // bias-corrected, = 13.75, not 10.
        let smoothed = smooth(&[20.0, 10.0], 0.6);
        assert!((smoothed[1] - 13.75).abs() < 1e-9, "{smoothed:?}");
    }

    #[test]
    fn depth_and_layer_data_carry_spread_and_names() {
        let series = DepthSeries {
            family: "plain".into(),
            color: 3,
            train: vec![(4.0, 9.0, 1.0), (64.0, 79.0, 2.0)],
            test: vec![],
        };
        let data = depth_chart(&[series], (4.0, 64.0), LINEAR).unwrap().data;
        assert_eq!(data.series.len(), 1, "an empty line is left out");
        assert_eq!(data.series[0].sd, vec![1.0, 2.0]);
        assert!(data.series[0].markers && data.smoothing.is_none());
        assert_eq!(data.x_name, "depth");
        let layers = [LayerSeries {
            label: "plain-8".into(),
            color: 0,
            dashed: false,
            points: vec![(1.0, 0.5)],
        }];
        let figure = layer_chart("g", "weighted layer", "norm", true, &layers).unwrap();
        assert_eq!(figure.data.x_name, "layer");
        assert_eq!(figure.data.y_label, "norm");
        assert!(figure.svg.contains("norm (log scale)"));
    }
}
