//! A figure as the page holds it: the SVG the report drew (what a reader without
//! JavaScript, a printer or an e-mail sees) and, beside it, the numbers it was drawn
//! from as JSON, from which the page's script (`templates/figures.js`) redraws it with
//! hover values, legend toggles, a log/linear switch, smoothing, per-seed curves and
//! SVG/PNG downloads.

use serde::Serialize;

/// One figure: its static SVG and its data.
#[derive(Debug, Clone)]
pub struct Figure {
    pub svg: String,
    pub data: FigureData,
}

impl Figure {
    /// The SVG followed by its data in a `<script type="application/json">`, the form
    /// the templates embed (the script finds the data next to the SVG it replaces).
    pub fn html(&self) -> String {
        // serde_json writes NaN as null; `</` is escaped so no value can end the script.
        let json = serde_json::to_string(&self.data)
            .unwrap_or_else(|_| "null".to_string())
            .replace("</", "<\\/");
        format!(
            "{}<script type=\"application/json\" class=\"figure-data\">{json}</script>",
            self.svg
        )
    }
}

/// Everything the script needs to draw the figure again.
#[derive(Debug, Clone, Serialize)]
pub struct FigureData {
    pub title: String,
    pub x_label: String,
    /// What one x value is called in a tooltip: "epoch", "depth", "layer", "block".
    pub x_name: String,
    pub y_label: String,
    /// The unit of the y values in tooltips ("%" for errors, "" otherwise).
    pub y_unit: String,
    /// The axis the figure starts on.
    pub log_y: bool,
    /// The exponential-moving-average weight the curves start with (the experiment's
    /// `report.smoothing`); None for figures where smoothing means nothing.
    pub smoothing: Option<f64>,
    pub series: Vec<SeriesData>,
}

/// One line of a figure. Lines sharing a `group` share a legend entry (a depth's
/// training and test error) and a tooltip.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesData {
    pub group: String,
    /// What the line is within its group ("train error", "test error"), or "".
    pub kind: String,
    /// `#rrggbb`.
    pub color: String,
    pub dashed: bool,
    /// Circles at the points (the depth chart's few points).
    pub markers: bool,
    /// (x, y), unsmoothed.
    pub points: Vec<[f64; 2]>,
    /// The standard deviation over seeds at each point, drawn as a band; empty for none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sd: Vec<f64>,
    /// Optimiser steps done at each point, for the tooltip; empty where unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<Option<u64>>,
    /// Seeds behind a mean, each with its own points.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<SeedCurve>,
    /// How many seeds a point is the mean of (1 for single runs).
    pub n: usize,
}

/// One seed's values of a mean line.
#[derive(Debug, Clone, Serialize)]
pub struct SeedCurve {
    pub label: String,
    pub points: Vec<[f64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_follows_the_svg_and_cannot_close_its_script() {
        let figure = Figure {
            svg: "<svg></svg>".into(),
            data: FigureData {
                title: "a </script><b>".into(),
                x_label: "epoch".into(),
                x_name: "epoch".into(),
                y_label: "error (%)".into(),
                y_unit: "%".into(),
                log_y: false,
                smoothing: Some(0.0),
                series: vec![SeriesData {
                    group: "plain-4".into(),
                    kind: "train error".into(),
                    color: "#1f77b4".into(),
                    dashed: true,
                    markers: false,
                    points: vec![[1.0, 12.5], [2.0, f64::NAN]],
                    sd: vec![],
                    iterations: vec![Some(10), None],
                    seeds: vec![],
                    n: 1,
                }],
            },
        };
        let html = figure.html();
        assert!(html.starts_with("<svg></svg><script type=\"application/json\""));
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        let json = html
            .split_once('>')
            .and_then(|(_, rest)| rest.split_once("\">"))
            .map(|(_, rest)| rest.trim_end_matches("</script>"))
            .unwrap();
        // `<\/` is JSON's own escape of `/`: the data parses as it is.
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back["title"], "a </script><b>");
        assert_eq!(back["series"][0]["points"][1][1], serde_json::Value::Null);
        assert!(
            back["series"][0].get("sd").is_none(),
            "empty lists left out"
        );
    }
}
